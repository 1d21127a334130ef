//! Samples to classify (`wgtrain predict`), told apart by their file name: PNG images (any
//! size and colour, resized to the model's square input), CSV rows of features (with or
//! without a leading label), or IDX image files.

use super::{csv, idx, image, Dataset, FeatureData};
use crate::error::{Error, Result};
use std::path::Path;

/// Reads `path` into samples of `width` features in the model's scale (pixels in [0, 1]),
/// labelled 0 (their labels are unknown).
pub fn read(path: &Path, width: usize) -> Result<Dataset> {
    let x = rows(path, width)?;
    let n = x.len() / width;
    Ok(Dataset {
        source: path.to_path_buf(),
        features: FeatureData::F32(x),
        labels: vec![0; n],
        rows: n,
        width,
        classes: 1,
    })
}

fn rows(path: &Path, width: usize) -> Result<Vec<f32>> {
    let name = path.to_string_lossy().to_lowercase();
    if name.ends_with(".png") {
        let side = (width as f64).sqrt().round() as usize;
        if side * side != width {
            return Err(Error::format(path, format!("the model takes {width} features, not a square image")));
        }
        return image::load_png(path, side);
    }
    if name.ends_with(".csv") {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // Rows of features alone are read by giving each a dummy label.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let cols = first.split(',').count();
        let d = if cols == width {
            let labelled: String =
                text.lines().map(|l| if l.trim().is_empty() { "\n".into() } else { format!("0,{l}\n") }).collect();
            csv::parse(path, &labelled)?
        } else {
            csv::parse(path, &text)?
        };
        if d.width != width {
            return Err(Error::format(path, format!("{} features per row, the model takes {width}", d.width)));
        }
        let mut x = vec![0.0; d.rows * width];
        (0..d.rows).for_each(|i| d.row_f32(i, &mut x[i * width..(i + 1) * width]));
        return Ok(x);
    }
    let a = idx::read(path)?;
    let w: usize = a.dims[1..].iter().product();
    if a.dims.len() < 2 || w != width {
        return Err(Error::format(
            path,
            format!("IDX dimensions {:?}; the model takes {width} values per sample", a.dims),
        ));
    }
    Ok(a.data.iter().map(|&b| f32::from(b) * (1.0 / 255.0)).collect())
}
