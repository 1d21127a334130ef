//! Feature scaling, fitted on the training set and applied to every set the model sees:
//! `x' = (x / divide − mean) / std`, with `divide` 255 for image bytes (pixels in [0, 1])
//! and 1 for CSV features, and `mean`, `std` one value for all features (images) or one
//! per feature (CSV columns), or none. The transform is stored with the weights
//! (`wgtrain.input`), so `eval`, `predict`, `--resume` and any other loader apply the
//! same one.

use super::{Dataset, FeatureData};
use serde::{Deserialize, Serialize};

/// `--normalize`: how features are scaled before training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// As stored (image bytes still become `x/255`).
    None,
    /// Mean 0 and standard deviation 1 on the training set: per column for CSV features,
    /// one mean and deviation over all pixels for images.
    Standard,
}

impl Normalize {
    /// The default for `data`: standard for CSV features (columns on different scales
    /// train badly), none for images (already in [0, 1]).
    pub fn default_for(data: &Dataset) -> Normalize {
        match data.features {
            FeatureData::U8(_) => Normalize::None,
            FeatureData::F32(_) => Normalize::Standard,
        }
    }
}

/// What the model's input expects: `x' = (x / divide − mean) / std`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputTransform {
    /// Values per sample.
    pub features: usize,
    /// Their shape, `[C, H, W]` or `[features]` (absent from files written before layer
    /// sequences: read as flat).
    #[serde(default)]
    pub shape: Vec<usize>,
    /// 255 for image bytes, 1 for CSV features.
    pub divide: f32,
    /// Empty (no standardization), one value for every feature, or one per feature.
    pub mean: Vec<f32>,
    /// As `mean`; a constant feature gets 1.
    pub std: Vec<f32>,
}

impl InputTransform {
    /// The transform `how` asks for, with its statistics from `train` (computed in f64).
    pub fn fit(train: &Dataset, how: Normalize) -> InputTransform {
        let w = train.width;
        let divide = match train.features {
            FeatureData::U8(_) => 255.0,
            FeatureData::F32(_) => 1.0,
        };
        let (mean, std) = match (how, &train.features) {
            (Normalize::None, _) => (Vec::new(), Vec::new()),
            (Normalize::Standard, FeatureData::U8(v)) => {
                let (m, s) = moments(v.iter().map(|&b| f64::from(b) / 255.0));
                (vec![m], vec![s])
            }
            (Normalize::Standard, FeatureData::F32(v)) => {
                (0..w).map(|c| moments(v.iter().skip(c).step_by(w.max(1)).map(|&x| f64::from(x)))).unzip()
            }
        };
        InputTransform { features: w, shape: train.shape.dims(), divide, mean, std }
    }

    /// The transform of data stored as `data` is, without standardization.
    pub fn identity_for(data: &Dataset) -> InputTransform {
        InputTransform::fit(data, Normalize::None)
    }

    /// The mean and deviation of feature `c`, when standardized.
    fn moments_of(&self, c: usize) -> Option<(f32, f32)> {
        match self.mean.len() {
            0 => None,
            1 => Some((self.mean[0], self.std[0])),
            _ => Some((self.mean[c], self.std[c])),
        }
    }

    /// Applies the transform to `data` in place. CSV features are rewritten; image bytes
    /// without standardization stay bytes (read as `x/255`); standardized images become
    /// f32 features (4× the memory: on a GPU whose binding limit is below the set's size
    /// they are streamed instead of resident).
    pub fn apply(&self, data: &mut Dataset) {
        match &mut data.features {
            FeatureData::F32(v) => self.standardize(v),
            FeatureData::U8(v) if !self.mean.is_empty() => {
                let mut x: Vec<f32> = v.iter().map(|&b| f32::from(b) * (1.0 / self.divide)).collect();
                self.standardize(&mut x);
                data.features = FeatureData::F32(x);
            }
            FeatureData::U8(_) => {}
        }
    }

    /// Standardizes rows of features already divided by `divide` (as `predict` reads
    /// images and CSV files), in place.
    pub fn standardize(&self, x: &mut [f32]) {
        let w = self.features.max(1);
        for row in x.chunks_mut(w) {
            for (c, v) in row.iter_mut().enumerate() {
                if let Some((m, s)) = self.moments_of(c) {
                    *v = (*v - m) / s;
                }
            }
        }
    }
}

/// The mean and standard deviation (population) of `values`; a deviation of 0 (a
/// constant feature) becomes 1.
fn moments(values: impl Iterator<Item = f64> + Clone) -> (f32, f32) {
    let (n, sum) = values.clone().fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n == 0 {
        return (0.0, 1.0);
    }
    let mean = sum / n as f64;
    let var = values.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
    let std = var.sqrt();
    let s = std as f32;
    (mean as f32, if s > 0.0 && s.is_finite() { s } else { 1.0 })
}
