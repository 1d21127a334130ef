//! Data: readers for IDX (gzip'd or raw) and CSV files, the in-memory data set, and the
//! seeded per-epoch order with its batches.

pub mod augment;
pub mod batches;
pub mod csv;
pub mod holdout;
pub mod idx;
pub mod image;
pub mod normalize;

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
    /// The shape of one sample: `[C, H, W]` for images (IDX `[N, H, W]` is one channel), flat
    /// `[width]` for CSV rows unless `--input` says otherwise.
    pub shape: crate::model::Shape,
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

/// The most classes a data set may have (labels 0..=65535): a stray huge label or
/// `--classes` value is refused instead of sizing the output layer and the class names by it.
pub const MAX_CLASSES: usize = 65_536;

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stems: &[&str]) -> Option<PathBuf> {
    stems.iter().flat_map(|s| [dir.join(s), dir.join(format!("{s}.gz"))]).find(|p| p.is_file())
}

/// `[28, 28]` as `28×28`.
fn shape_str(dims: &[usize]) -> String {
    dims.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

/// Loads an IDX set from a directory holding `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`
/// (the MNIST family's names; `test-` for `t10k-` also works), and `classes.txt` (one
/// name per line) if present. All four headers are read and checked against each other
/// before any values are.
pub fn load_idx_dir(dir: &Path, classes: Option<usize>) -> Result<Split> {
    if !dir.is_dir() {
        return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory")));
    }
    let need = |stems: &[&str]| {
        find(dir, stems)
            .ok_or_else(|| Error::format(dir, format!("expected {} (or .gz) in this directory", stems.join(" or "))))
    };
    let open = |images: &[&str], labels: &[&str]| -> Result<idx::IdxSet> {
        let (ip, lp) = (need(images)?, need(labels)?);
        idx::open_set(&ip, &lp)
    };
    let train = open(&["train-images-idx3-ubyte"], &["train-labels-idx1-ubyte"])?;
    let test = open(
        &["t10k-images-idx3-ubyte", "test-images-idx3-ubyte"],
        &["t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"],
    )?;
    if train.sample_dims() != test.sample_dims() {
        return Err(Error::format(
            &test.images_path,
            format!(
                "test images are {}, but the training images in {} are {}",
                shape_str(test.sample_dims()),
                train.images_path.display(),
                shape_str(train.sample_dims())
            ),
        ));
    }
    let names = read_class_names(&dir.join("classes.txt"))?;
    let (train_labels, test_labels) = (train.labels_path.clone(), test.labels_path.clone());
    let (mut train, mut test) = (train.read()?, test.read()?);
    let named = (!names.is_empty()).then_some(names.len());
    let k = resolve_classes((&train.labels, &train_labels), (&test.labels, &test_labels), classes, named)?;
    train.classes = k;
    test.classes = k;
    Ok(Split::new(train, test, complete_names(names, k)))
}

/// Loads comma-separated CSV data: `train` and, if given, `test`; otherwise a seeded 80/20
/// split of `train`.
pub fn load_csv(train_path: &Path, test_path: Option<&Path>, classes: Option<usize>, seed: u64) -> Result<Split> {
    load_csv_delimited(train_path, test_path, classes, seed, csv::DEFAULT_DELIMITER)
}

/// [`load_csv`] for fields separated by `delimiter`. Without a test file the class count
/// comes from the whole file, before the split.
pub fn load_csv_delimited(
    train_path: &Path,
    test_path: Option<&Path>,
    classes: Option<usize>,
    seed: u64,
    delimiter: u8,
) -> Result<Split> {
    let all = csv::read(train_path, delimiter)?;
    let (mut train, mut test, k) = match test_path {
        Some(p) => {
            let t = csv::read(p, delimiter)?;
            if t.width != all.width {
                return Err(Error::format(
                    p,
                    format!("{} features per row, the training file has {}", t.width, all.width),
                ));
            }
            let k = resolve_classes((&all.labels, train_path), (&t.labels, p), classes, None)?;
            (all, t, k)
        }
        None => {
            if all.rows < 2 {
                return Err(Error::format(train_path, "at least 2 rows are needed to split off a test set"));
            }
            let k = resolve_classes((&all.labels, train_path), (&[], train_path), classes, None)?;
            let mut order: Vec<u32> = (0..all.rows as u32).collect();
            Rng::new(seed, 3).shuffle(&mut order);
            let cut = (all.rows / 5).max(1);
            (all.select(&order[cut..]), all.select(&order[..cut]), k)
        }
    };
    train.classes = k;
    test.classes = k;
    Ok(Split::new(train, test, complete_names(Vec::new(), k)))
}

/// Loads `--data PATH`: a directory of IDX files or a CSV file (fields separated by
/// `delimiter`, a comma when `None`). `--test` and `--delimiter` are for CSV data only.
pub fn load(
    path: &Path,
    test: Option<&Path>,
    classes: Option<usize>,
    seed: u64,
    delimiter: Option<char>,
) -> Result<Split> {
    if path.is_dir() {
        if let Some(t) = test {
            return Err(Error::invalid(
                "--test",
                t.display(),
                "no --test with IDX data: the folder's own t10k (or test) files are the test set",
            ));
        }
        if let Some(d) = delimiter {
            return Err(Error::invalid("--delimiter", format!("{d:?}"), "no --delimiter with IDX data (CSV only)"));
        }
        load_idx_dir(path, classes)
    } else if path.is_file() {
        let d = match delimiter {
            None => csv::DEFAULT_DELIMITER,
            Some(c) if c.is_ascii() => c as u8,
            Some(c) => return Err(Error::invalid("--delimiter", format!("{c:?}"), "a single ASCII character")),
        };
        load_csv_delimited(path, test, classes, seed, d)
    } else {
        Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")))
    }
}

fn read_class_names(path: &Path) -> Result<Vec<String>> {
    match std::fs::read(path) {
        Ok(b) => {
            let s = String::from_utf8(b).map_err(|e| Error::format(path, format!("not UTF-8 text: {e}")))?;
            let names: Vec<String> = s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
            if names.len() > MAX_CLASSES {
                return Err(Error::format(path, format!("{} class names, at most {MAX_CLASSES}", names.len())));
            }
            Ok(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The number of classes: `--classes` if given, else the number of names in
/// `classes.txt` (`named`), else the largest training label + 1; at most [`MAX_CLASSES`].
/// Every label is checked against it, naming the file that holds the labels
/// (`train_labels`, `test_labels`), the sample and the label. The training labels must
/// hold at least two distinct values.
fn resolve_classes(
    (train, train_labels): (&[u32], &Path),
    (test, test_labels): (&[u32], &Path),
    given: Option<usize>,
    named: Option<usize>,
) -> Result<usize> {
    if let Some(c) = given.filter(|&c| c > MAX_CLASSES) {
        return Err(Error::invalid("--classes", c, format!("at most {MAX_CLASSES}")));
    }
    for (d, path) in [(train, train_labels), (test, test_labels)] {
        if let Some((i, &l)) = d.iter().enumerate().find(|(_, &l)| l as usize >= MAX_CLASSES) {
            return Err(Error::format(
                path,
                format!(
                    "sample {i} has label {l}, but at most {MAX_CLASSES} classes (labels 0..={}) are supported",
                    MAX_CLASSES - 1
                ),
            ));
        }
    }
    if let Some(&first) = train.first() {
        if train.iter().all(|&l| l == first) {
            return Err(Error::format(
                train_labels,
                format!("only one class ({first}) in the training labels; at least 2 distinct labels are needed"),
            ));
        }
    }
    let (k, why) = match (given, named) {
        (Some(k), _) => (k, "given with --classes".to_string()),
        (None, Some(n)) => (n, "named in classes.txt".to_string()),
        (None, None) => {
            (train.iter().max().map_or(0, |&m| m as usize) + 1, "the largest training label + 1".to_string())
        }
    };
    if k < 2 {
        return Err(Error::format(train_labels, format!("{k} class(es) {why}; at least 2 are needed")));
    }
    for (d, path) in [(train, train_labels), (test, test_labels)] {
        if let Some((i, &l)) = d.iter().enumerate().find(|(_, &l)| l as usize >= k) {
            let what = if given.is_none() && named.is_none() {
                format!(
                    "sample {i} has label {l}, which never occurs in training: there are {k} classes ({why}, \
                     labels 0..={}); give --classes to train with more",
                    k - 1
                )
            } else {
                format!("sample {i} has label {l}, but there are {k} classes ({why}: labels 0..={})", k - 1)
            };
            return Err(Error::format(path, what));
        }
    }
    Ok(k)
}

fn complete_names(mut names: Vec<String>, k: usize) -> Vec<String> {
    names.truncate(k);
    while names.len() < k {
        names.push(format!("class {}", names.len()));
    }
    names
}
