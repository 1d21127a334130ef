//! CSV data: the label (a non-negative integer) in the first column, numeric features
//! after it, an optional header row (a first row whose first field is not a number).
//! Every row must have the same width; the first bad field is named by line and column.
//!
//! Records are split by the `csv` crate: quoted fields (`"1.5"`), CRLF line ends, a
//! leading UTF-8 byte-order mark (dropped before the header rule looks at the first
//! field) and any single-byte delimiter (`--delimiter ';'`, `--delimiter tab`). Blank lines
//! are skipped; spaces around fields are trimmed.

use super::{Dataset, FeatureData};
use crate::error::{Error, Result};
use std::path::Path;

/// The field separator when none is given.
pub const DEFAULT_DELIMITER: u8 = b',';

/// Reads a CSV file (fields separated by `delimiter`) into a data set with `f32` features.
pub fn read(path: &Path, delimiter: u8) -> Result<Dataset> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_bytes(path, &bytes, delimiter)
}

/// Parses comma-separated text (see the module's description); `path` is for messages.
pub fn parse(path: &Path, text: &str) -> Result<Dataset> {
    parse_bytes(path, text.as_bytes(), DEFAULT_DELIMITER)
}

/// Parses CSV bytes (UTF-8, fields separated by `delimiter`) into a labelled data set.
pub fn parse_bytes(path: &Path, bytes: &[u8], delimiter: u8) -> Result<Dataset> {
    let fail = |line: u64, what: String| Error::format(path, format!("line {line}: {what}"));
    let mut width = None;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    records(path, bytes, delimiter, |line, fields| {
        let w = fields.len() - 1;
        match width {
            None if w == 0 => return Err(fail(line, "a label but no features; expected label,feature,…".into())),
            None => width = Some(w),
            Some(expected) if w != expected => {
                return Err(fail(line, format!("{w} features, expected {expected} like the rows before")));
            }
            _ => {}
        }
        let label = fields.get(0).unwrap_or_default();
        let l: u32 =
            label.parse().map_err(|_| fail(line, format!("label `{}` is not a non-negative integer", shown(label))))?;
        labels.push(l);
        for (c, v) in fields.iter().enumerate().skip(1) {
            features.push(number(v).map_err(|what| fail(line, format!("column {}{what}", c + 1)))?);
        }
        Ok(())
    })?;
    let Some(width) = width else {
        return Err(Error::format(path, "no data rows"));
    };
    Ok(Dataset {
        source: path.to_path_buf(),
        rows: labels.len(),
        features: FeatureData::F32(features),
        labels,
        width,
        shape: crate::model::Shape::Flat(width),
        classes: 0,
    })
}

/// Parses CSV bytes as rows of numbers alone (no label column), every row as wide as the
/// first; returns the values row-major and the width.
pub fn parse_numbers(path: &Path, bytes: &[u8], delimiter: u8) -> Result<(Vec<f32>, usize)> {
    let fail = |line: u64, what: String| Error::format(path, format!("line {line}: {what}"));
    let mut width = None;
    let mut values = Vec::new();
    records(path, bytes, delimiter, |line, fields| {
        let w = fields.len();
        match width {
            None => width = Some(w),
            Some(expected) if w != expected => {
                return Err(fail(line, format!("{w} fields, expected {expected} like the rows before")));
            }
            _ => {}
        }
        for (c, v) in fields.iter().enumerate() {
            values.push(number(v).map_err(|what| fail(line, format!("column {}{what}", c + 1)))?);
        }
        Ok(())
    })?;
    let width = width.ok_or_else(|| Error::format(path, "no data rows"))?;
    Ok((values, width))
}

/// A finite number, or the end of a message that follows "column N".
fn number(v: &str) -> std::result::Result<f32, String> {
    if v.is_empty() {
        return Err(" is empty, expected a number".into());
    }
    let x: f32 = v.parse().map_err(|_| format!(": `{}` is not a number", shown(v)))?;
    if !x.is_finite() {
        return Err(format!(": `{}` is not finite", shown(v)));
    }
    Ok(x)
}

/// A field as a message shows it: on one line (a quoted field may span several), and
/// cut after 40 characters.
fn shown(v: &str) -> String {
    let mut s: String = v.chars().take(40).flat_map(char::escape_debug).collect();
    if v.chars().count() > 40 {
        s.push('…');
    }
    s
}

/// Calls `row(line, fields)` for every data record: UTF-8 checked, the byte-order mark
/// dropped, blank lines and the header row skipped, fields trimmed.
fn records(
    path: &Path,
    bytes: &[u8],
    delimiter: u8,
    mut row: impl FnMut(u64, &csv::StringRecord) -> Result<()>,
) -> Result<()> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(Error::format(path, format!("line {line}: not UTF-8 text ({e})")));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut first = true;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(String::new(), |p| format!("line {}: ", p.line()));
                return Err(Error::format(path, format!("{line}not readable as CSV: {e}")));
            }
        }
        if record.iter().all(str::is_empty) {
            continue; // a blank (or whitespace-only) line
        }
        let line = record.position().map_or(0, |p| p.line());
        if std::mem::take(&mut first) && record.get(0).unwrap_or_default().parse::<f64>().is_err() {
            continue; // a header row
        }
        row(line, &record)?;
    }
}
