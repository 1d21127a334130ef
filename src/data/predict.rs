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

/// The smallest square input a PNG is resized to: a model with fewer inputs (or a
/// non-square count) did not learn from images, and a picture squeezed to it means nothing.
pub const MIN_IMAGE_SIDE: usize = 8;

fn rows(path: &Path, width: usize) -> Result<Vec<f32>> {
    if path.is_dir() {
        return Err(Error::format(path, "a directory, expected a PNG, CSV or IDX file"));
    }
    let name = path.to_string_lossy().to_lowercase();
    if name.ends_with(".png") {
        let side = (width as f64).sqrt().round() as usize;
        if side * side != width || side < MIN_IMAGE_SIDE {
            return Err(Error::format(
                path,
                format!(
                    "the model takes {width} features, not a square image of at least \
                     {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} pixels: PNG input needs a model trained on images"
                ),
            ));
        }
        return image::load_png(path, side);
    }
    if name.ends_with(".csv") {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        // Rows of features alone, or of a label and the features (the label is dropped).
        let (values, cols) = csv::parse_numbers(path, &bytes, csv::DEFAULT_DELIMITER)?;
        if cols == width {
            return Ok(values);
        }
        if cols == width + 1 {
            return Ok(values.chunks_exact(cols).flat_map(|r| r[1..].iter().copied()).collect());
        }
        return Err(Error::format(
            path,
            format!("{cols} features per row, the model takes {width} (optionally after a label)"),
        ));
    }
    let a = idx::open(path)?;
    let w: usize = a.dims[1..].iter().product();
    if a.dims.len() < 2 || w != width {
        return Err(Error::format(
            path,
            format!("IDX dimensions {:?}; the model takes {width} values per sample", a.dims),
        ));
    }
    Ok(a.body()?.iter().map(|&b| f32::from(b) * (1.0 / 255.0)).collect())
}
