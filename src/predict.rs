//! `wgtrain predict`: saved weights classify the samples of files, told apart by their
//! name: PNG images (any size and colour, resized to the model's square input), CSV rows
//! of features (with or without a leading label), or IDX image files. The inputs are
//! scaled as the model's training data was (`wgtrain.input`).

use crate::checkpoint;
use crate::data::{csv, idx, image, Dataset, FeatureData};
use crate::engine::{CpuEngine, Engine};
use crate::error::{Error, Result};
use crate::optim::OptimKind;
use crate::run;
use std::path::Path;

/// Saved weights, ready to classify: the network on the CPU, its class names and the
/// input transform it was trained with.
pub struct Predictor {
    engine: CpuEngine,
    names: Vec<String>,
    metadata: std::collections::HashMap<String, String>,
    width: usize,
    classes: usize,
}

impl Predictor {
    /// Loads a weights file.
    pub fn open(path: &Path) -> Result<Predictor> {
        let w = checkpoint::load_weights(path)?;
        let (width, classes) = (w.model.inputs(), w.model.classes());
        let names: Vec<String> = w
            .metadata
            .get(run::META_CLASSES)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| (0..classes).map(|c| format!("class {c}")).collect());
        let engine = CpuEngine::new(&w.model, w.params, OptimKind::Sgd, crate::train::CHUNK);
        Ok(Predictor { engine, names, metadata: w.metadata, width, classes })
    }

    /// The most probable class of each sample in `input`, by name, with its probability.
    pub fn classify(&mut self, input: &Path) -> Result<Vec<(&str, f32)>> {
        let mut samples = read(input, self.width)?;
        // Read in the model's scale (pixels in [0, 1]); then standardized as in training.
        let t = run::input_transform(&self.metadata, &samples);
        if let FeatureData::F32(x) = &mut samples.features {
            t.standardize(x);
        }
        let p = self.engine.predict(&samples)?;
        Ok(p.chunks(self.classes)
            .map(|row| {
                let (best, prob) =
                    row.iter().enumerate().fold((0, f32::MIN), |b, (j, &v)| if v > b.1 { (j, v) } else { b });
                (self.names.get(best).map_or("?", String::as_str), prob)
            })
            .collect())
    }
}

/// Reads `path` into samples of `width` features in the model's scale (pixels in [0, 1]),
/// labelled 0 (their labels are unknown).
fn read(path: &Path, width: usize) -> Result<Dataset> {
    let x = rows(path, width)?;
    let n = x.len() / width;
    Ok(Dataset {
        source: path.to_path_buf(),
        features: FeatureData::F32(x),
        labels: vec![0; n],
        rows: n,
        width,
        shape: crate::model::Shape::Flat(width),
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
