//! Data: readers for IDX (gzip'd or raw) and CSV files, the in-memory data set, and the
//! seeded per-epoch order with its batches.

pub mod batches;
pub mod csv;
pub mod holdout;
pub mod idx;
pub mod image;
pub mod normalize;
pub mod predict;

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::path::{Path, PathBuf};

/// Feature values as stored: bytes (pixels, scaled to [0, 1] on use) or `f32`.
#[derive(Clone, Debug, PartialEq)]
pub enum FeatureData {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// A labelled table: `rows` samples of `width` features each.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Where it came from (shown in messages).
    pub source: PathBuf,
    pub features: FeatureData,
    pub labels: Vec<u32>,
    pub rows: usize,
    pub width: usize,
    pub classes: usize,
}

/// A training set, a validation set held out of it (empty unless
/// [`hold_out`](Split::hold_out) moved samples there), a test set, and the class names.
#[derive(Clone, Debug)]
pub struct Split {
    pub train: Dataset,
    pub val: Dataset,
    pub test: Dataset,
    pub class_names: Vec<String>,
    /// The scaling the features went through (see [`normalize`]).
    pub input: normalize::InputTransform,
}

impl Split {
    /// A split without a validation set, its features as stored.
    pub fn new(train: Dataset, test: Dataset, class_names: Vec<String>) -> Split {
        let input = normalize::InputTransform::identity_for(&train);
        Split { val: train.empty_like(), train, test, class_names, input }
    }

    /// Fits the scaling `how` asks for on the training set and applies it to all three
    /// sets.
    pub fn normalize(&mut self, how: normalize::Normalize) {
        self.input = normalize::InputTransform::fit(&self.train, how);
        for d in [&mut self.train, &mut self.val, &mut self.test] {
            self.input.apply(d);
        }
    }
}

impl Dataset {
    /// Checks the labels against `classes`, naming the first offending sample.
    pub fn check_labels(&self, classes: usize) -> Result<()> {
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            return Err(Error::format(
                &self.source,
                format!("sample {i} has label {l}, but there are {classes} classes (labels 0..={})", classes - 1),
            ));
        }
        Ok(())
    }

    /// Sample `i`'s features as f32 (bytes scaled by 1/255, as the GPU's gather does).
    pub fn row_f32(&self, i: usize, out: &mut [f32]) {
        let r = i * self.width..(i + 1) * self.width;
        match &self.features {
            FeatureData::U8(v) => {
                let inv = 1.0f32 / 255.0;
                for (o, &b) in out.iter_mut().zip(&v[r]) {
                    *o = f32::from(b) * inv;
                }
            }
            FeatureData::F32(v) => out.copy_from_slice(&v[r]),
        }
    }

    /// The first `n` rows (for quick runs and tests).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.rows);
        let features = match &self.features {
            FeatureData::U8(v) => FeatureData::U8(v[..n * self.width].to_vec()),
            FeatureData::F32(v) => FeatureData::F32(v[..n * self.width].to_vec()),
        };
        Dataset { features, labels: self.labels[..n].to_vec(), rows: n, ..self.clone() }
    }

    /// The rows `idx`, in that order.
    pub fn select(&self, idx: &[u32]) -> Dataset {
        let w = self.width;
        let features = match &self.features {
            FeatureData::U8(v) => {
                FeatureData::U8(idx.iter().flat_map(|&i| v[i as usize * w..][..w].iter().copied()).collect())
            }
            FeatureData::F32(v) => {
                FeatureData::F32(idx.iter().flat_map(|&i| v[i as usize * w..][..w].iter().copied()).collect())
            }
        };
        let labels = idx.iter().map(|&i| self.labels[i as usize]).collect();
        Dataset { features, labels, rows: idx.len(), ..self.clone() }
    }
}

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    stems.iter().flat_map(|s| [dir.join(s), dir.join(format!("{s}.gz"))]).find(|p| p.is_file())
}

/// Loads an IDX set from a directory holding `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`
/// (the MNIST family's names; `test-` for `t10k-` also works), and `classes.txt` (one
/// name per line) if present.
pub fn load_idx_dir(dir: &Path, classes: Option<usize>) -> Result<Split> {
    if !dir.is_dir() {
        return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory")));
    }
    let need = |stems: &[&str]| {
        find(dir, stems)
            .ok_or_else(|| Error::format(dir, format!("expected {} (or .gz) in this directory", stems.join(" or "))))
    };
    let load = |images: &[&str], labels: &[&str]| -> Result<Dataset> {
        let (ip, lp) = (need(images)?, need(labels)?);
        idx::read_set(&ip, &lp)
    };
    let mut train = load(&["train-images-idx3-ubyte"], &["train-labels-idx1-ubyte"])?;
    let mut test = load(
        &["t10k-images-idx3-ubyte", "test-images-idx3-ubyte"],
        &["t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"],
    )?;
    if train.width != test.width {
        return Err(Error::format(
            &test.source,
            format!("test images have {} values each, training images {}", test.width, train.width),
        ));
    }
    let names = read_class_names(&dir.join("classes.txt"))?;
    let k = resolve_classes(&train, &test, classes, names.len())?;
    train.classes = k;
    test.classes = k;
    Ok(Split::new(train, test, complete_names(names, k)))
}

/// Loads CSV data: `train` and, if given, `test`; otherwise a seeded 80/20 split of `train`.
pub fn load_csv(train_path: &Path, test_path: Option<&Path>, classes: Option<usize>, seed: u64) -> Result<Split> {
    let all = csv::read(train_path)?;
    let (mut train, mut test) = match test_path {
        Some(p) => {
            let t = csv::read(p)?;
            if t.width != all.width {
                return Err(Error::format(
                    p,
                    format!("{} features per row, the training file has {}", t.width, all.width),
                ));
            }
            (all, t)
        }
        None => {
            if all.rows < 2 {
                return Err(Error::format(train_path, "at least 2 rows are needed to split off a test set"));
            }
            let mut order: Vec<u32> = (0..all.rows as u32).collect();
            Rng::new(seed, 3).shuffle(&mut order);
            let cut = (all.rows / 5).max(1);
            (all.select(&order[cut..]), all.select(&order[..cut]))
        }
    };
    let k = resolve_classes(&train, &test, classes, 0)?;
    train.classes = k;
    test.classes = k;
    Ok(Split::new(train, test, complete_names(Vec::new(), k)))
}

/// Loads `--data PATH`: a directory of IDX files or a CSV file.
pub fn load(path: &Path, test: Option<&Path>, classes: Option<usize>, seed: u64) -> Result<Split> {
    if path.is_dir() {
        load_idx_dir(path, classes)
    } else if path.is_file() {
        load_csv(path, test, classes, seed)
    } else {
        Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")))
    }
}

fn read_class_names(path: &Path) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The number of classes: `--classes` if given (checked against the labels), else the
/// larger of the largest label + 1 and the number of class names.
fn resolve_classes(train: &Dataset, test: &Dataset, given: Option<usize>, named: usize) -> Result<usize> {
    let seen = train.labels.iter().chain(&test.labels).max().map_or(0, |&m| m as usize + 1);
    let k = given.unwrap_or(seen.max(named));
    if k < 2 {
        return Err(Error::format(&train.source, format!("{k} class(es) found; at least 2 are needed")));
    }
    train.check_labels(k)?;
    test.check_labels(k)?;
    Ok(k)
}

fn complete_names(mut names: Vec<String>, k: usize) -> Vec<String> {
    names.truncate(k);
    while names.len() < k {
        names.push(format!("class {}", names.len()));
    }
    names
}
