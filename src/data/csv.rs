//! CSV data: the label (a non-negative integer) in the first column, numeric features
//! after it, an optional header row (a first row whose first field is not a number).
//! Every row must have the same width; the first bad field is named by line and column.

use super::{Dataset, FeatureData};
use crate::error::{Error, Result};
use std::path::Path;

/// Reads a CSV file into a data set with `f32` features.
pub fn read(path: &Path) -> Result<Dataset> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(text).map_err(|e| Error::format(path, format!("not UTF-8 text: {e}")))?;
    parse(path, &text)
}

/// Parses CSV text (see the module's description); `path` is for messages.
pub fn parse(path: &Path, text: &str) -> Result<Dataset> {
    let fail = |line: usize, what: String| Error::format(path, format!("line {line}: {what}"));
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).peekable();
    if let Some((_, first)) = lines.peek() {
        let f = first.split(',').next().unwrap_or("").trim();
        if f.parse::<f64>().is_err() {
            lines.next(); // a header row
        }
    }
    let mut width = None;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (i, line) in lines {
        let ln = i + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let w = fields.len() - 1;
        match width {
            None if w == 0 => return Err(fail(ln, "a label but no features; expected label,feature,…".into())),
            None => width = Some(w),
            Some(expected) if w != expected => {
                return Err(fail(ln, format!("{w} features, expected {expected} like the rows before")));
            }
            _ => {}
        }
        let label = fields[0];
        let l: u32 = label.parse().map_err(|_| fail(ln, format!("label `{label}` is not a non-negative integer")))?;
        labels.push(l);
        for (c, v) in fields[1..].iter().enumerate() {
            if v.is_empty() {
                return Err(fail(ln, format!("column {} is empty, expected a number", c + 2)));
            }
            let x: f32 = v.parse().map_err(|_| fail(ln, format!("column {}: `{v}` is not a number", c + 2)))?;
            if !x.is_finite() {
                return Err(fail(ln, format!("column {}: `{v}` is not finite", c + 2)));
            }
            features.push(x);
        }
    }
    let Some(width) = width else {
        return Err(Error::format(path, "no data rows"));
    };
    Ok(Dataset {
        source: path.to_path_buf(),
        rows: labels.len(),
        features: FeatureData::F32(features),
        labels,
        width,
        classes: 0,
    })
}
