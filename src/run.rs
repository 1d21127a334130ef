//! The run folder, defined once: its layout, `config.json`, the `metrics.jsonl` records,
//! the metadata stored with every weights file, the description of the data a run trained
//! on, and the checkpoint `--resume` reads. [`RunDir`] writes a folder (it is the
//! trainer's [`Journal`]); [`load_resume`], [`RunConfig::read`] and [`RunLog::read`] read
//! one back through the same types.
//!
//! ```text
//! runs/run-001/
//!   config.json        RunConfig: the configuration, data, sample counts, classes, device
//!   metrics.jsonl      one Record a line: {"kind":"interval",…} or {"kind":"epoch",…}
//!   model.safetensors  the latest weights (PyTorch names; see crate::checkpoint)
//!   best.safetensors   the weights of the epoch with the lowest test loss
//!   state.safetensors  weights, optimizer state and Progress, for --resume
//!   loss.svg, …        the figures (crate::plot)
//! ```

use crate::checkpoint;
use crate::data::holdout::ValSize;
use crate::data::normalize::{InputTransform, Normalize};
use crate::data::{self, Split};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::optim::OptimKind;
use crate::train::{BatchSize, Config, EpochRecord, IntervalRecord, Journal, Progress};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The run's configuration, data and device ([`RunConfig`]).
pub const CONFIG_FILE: &str = "config.json";
/// One [`Record`] a line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The latest weights, for PyTorch, `eval` and `predict`.
pub const MODEL_FILE: &str = "model.safetensors";
/// The weights of the epoch with the lowest test loss.
pub const BEST_FILE: &str = "best.safetensors";
/// Weights, optimizer state and progress: what `--resume` reads.
pub const STATE_FILE: &str = "state.safetensors";
/// On a GPU: which kernel each matrix product ran, and how it was chosen
/// ([`crate::gpu::choice`]); written when training ends.
pub const KERNELS_FILE: &str = "kernels.json";

/// Metadata keys of the weights files (beside [`checkpoint::MODEL_KEY`]): the class names
/// (JSON list), the [`DataSpec`] (JSON), the device (words); in the state file also the
/// [`Progress`] and the [`Config`] (JSON).
pub const META_CLASSES: &str = "wgtrain.classes";
pub const META_DATA: &str = "wgtrain.data";
pub const META_DEVICE: &str = "wgtrain.device";
pub const META_PROGRESS: &str = "wgtrain.progress";
pub const META_CONFIG: &str = "wgtrain.config";
/// The input transform the model expects ([`InputTransform`], JSON).
pub const META_INPUT: &str = checkpoint::INPUT_KEY;

/// What data a run trained on, stored with it so `--resume`, `eval` and `plot` find it
/// again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSpec {
    /// A folder of IDX files or a CSV file.
    pub data: PathBuf,
    /// A CSV test file.
    pub test: Option<PathBuf>,
    /// The class count given with `--classes`.
    pub classes: Option<usize>,
    /// The CSV field separator given with `--delimiter` (a comma when absent).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// Only the first N training samples (`--limit`).
    pub limit: Option<usize>,
    /// The seed of the CSV train/test split and of the validation split.
    pub seed: u64,
    /// Samples held out for validation (`None`: the default, see [`ValSize::samples`]).
    #[serde(default = "no_val_recorded")]
    pub val: Option<ValSize>,
    /// Feature scaling (`None`: the default for the data, see [`Normalize::default_for`]).
    #[serde(default)]
    pub normalize: Option<Normalize>,
    /// `--input C,H,W`: the shape CSV rows are read as (`None`: as the data says).
    #[serde(default)]
    pub input: Option<Vec<usize>>,
    /// A hash of the data's content (features and labels as loaded), recorded when the
    /// run starts and checked when it resumes.
    #[serde(default)]
    pub content_hash: Option<String>,
}

/// Runs recorded before the validation split held nothing out.
fn no_val_recorded() -> Option<ValSize> {
    Some(ValSize::Count(0))
}

impl DataSpec {
    /// Reads the data it describes, holds out the validation set and scales the features.
    /// Records the content hash, or, when one is recorded, refuses data whose content
    /// changed.
    pub fn load(&mut self) -> Result<Split> {
        let mut split = self.load_raw()?;
        let hash = content_hash(&split);
        match &self.content_hash {
            Some(h) if *h != hash => {
                return Err(Error::format(
                    &self.data,
                    format!(
                        "the data's content changed since the run recorded it (hash {h}, now {hash}): \
                         continuing on other data would not be the same run"
                    ),
                ))
            }
            Some(_) => {}
            None => self.content_hash = Some(hash),
        }
        split.hold_out(ValSize::samples(self.val, split.train.rows), self.seed)?;
        split.normalize(self.normalize.unwrap_or_else(|| Normalize::default_for(&split.train)));
        Ok(split)
    }

    /// Reads the data it describes as stored: no validation set, features unscaled.
    pub fn load_raw(&self) -> Result<Split> {
        if let Some(c) = self.classes.filter(|&c| c < 2) {
            return Err(Error::invalid("--classes", c, "at least 2"));
        }
        let mut split = data::load(&self.data, self.test.as_deref(), self.classes, self.seed, self.delimiter)?;
        if let Some(n) = self.limit {
            if n == 0 {
                return Err(Error::invalid("--limit", 0, "at least 1 sample"));
            }
            split.train = split.train.head(n);
        }
        if let Some(dims) = &self.input {
            let shape = crate::model::Shape::from_dims(dims);
            if shape.len() != split.train.width {
                let expected = format!("C·H·W = {} values, the features of each row", split.train.width);
                return Err(Error::invalid(
                    "--input",
                    dims.iter().map(usize::to_string).collect::<Vec<_>>().join(","),
                    expected,
                ));
            }
            split.train.shape = shape;
            split.test.shape = shape;
            split.input.shape = dims.clone();
        }
        Ok(split)
    }
}

/// FNV-1a (64 bits) over the training and test sets' labels and features as loaded, in
/// hexadecimal: the same for the same data in any file encoding (gzip or raw).
pub fn content_hash(split: &Split) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for d in [&split.train, &split.test] {
        eat(bytemuck::cast_slice(&d.labels));
        match &d.features {
            data::FeatureData::U8(v) => eat(v),
            data::FeatureData::F32(v) => eat(bytemuck::cast_slice(v)),
        }
    }
    format!("{h:016x}")
}

/// `config.json`: everything that defines the run, and what it ran on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    pub config: Config,
    pub data: DataSpec,
    pub train_samples: usize,
    pub test_samples: usize,
    pub classes: Vec<String>,
    pub device: String,
}

impl RunConfig {
    /// Reads `dir/config.json`.
    pub fn read(dir: &Path) -> Result<RunConfig> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not a wgtrain run configuration: {e}")))
    }
}

/// One line of `metrics.jsonl`, tagged by its `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Interval(IntervalRecord),
    Epoch(EpochRecord),
}

/// A run folder being written: the trainer's [`Journal`]. It holds the folder's lock
/// while it lives.
pub struct RunDir {
    pub path: PathBuf,
    metrics: std::fs::File,
    /// Metadata stored with every weights file (class names, data, device).
    meta: HashMap<String, String>,
    _lock: Lock,
}

/// The file that marks a run folder as being written by a process (its id inside).
pub const LOCK_FILE: &str = "run.lock";

/// A run folder's lock: `run.lock`, created exclusively, holding this process's id;
/// removed when dropped. A lock whose process is gone (killed) is taken over.
struct Lock(PathBuf);

impl Lock {
    fn take(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
                    return Ok(Lock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if process_alive(pid) => {
                            return Err(Error::format(
                                dir,
                                format!("the run folder is locked by process {pid}, which is writing it"),
                            ))
                        }
                        // A lock left by a killed run (or half-written): take it over.
                        _ => std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?,
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::format(dir, "the run folder's lock could not be taken: another run is starting in it"))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether process `pid` runs (Linux: `/proc/PID/stat`, a zombie — killed, not yet
/// reaped, as a killed MPI job's ranks are for a moment — counting as gone; elsewhere
/// assumed alive, so a stale lock must be removed by hand).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        // `PID (COMM) STATE …`: the state follows the last ')'.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    } else {
        true
    }
}

/// The files a run writes into its folder (what `--force` replaces).
fn holds_a_run(dir: &Path) -> bool {
    [CONFIG_FILE, METRICS_FILE, STATE_FILE, MODEL_FILE].iter().any(|f| dir.join(f).exists())
}

/// The metadata every weights file of a run carries.
fn weights_metadata(split: &Split, spec: &DataSpec, device: &str) -> HashMap<String, String> {
    HashMap::from([
        (META_CLASSES.into(), serde_json::to_string(&split.class_names).expect("names serialise")),
        (META_DATA.into(), serde_json::to_string(spec).expect("spec serialises")),
        (META_DEVICE.into(), device.to_string()),
        (META_INPUT.into(), serde_json::to_string(&split.input).expect("transform serialises")),
    ])
}

/// The input transform stored with weights (`metadata`), or, for weights saved before it
/// was stored, the plain one for `data`.
pub fn input_transform(metadata: &HashMap<String, String>, data: &data::Dataset) -> InputTransform {
    metadata
        .get(META_INPUT)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| InputTransform::identity_for(data))
}

impl RunDir {
    /// Creates `path` (or, when `None`, the next free `runs/run-NNN`) for a new run, locks
    /// it and writes its `config.json`. A folder that holds a run is refused unless
    /// `force`, which replaces that run.
    pub fn create(
        path: Option<&Path>,
        force: bool,
        cfg: &Config,
        spec: &DataSpec,
        split: &Split,
        device: &str,
    ) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                (1..).map(|i| PathBuf::from(format!("runs/run-{i:03}"))).find(|p| !p.exists()).expect("a free run name")
            }
        };
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let lock = Lock::take(&path)?;
        if holds_a_run(&path) {
            if !force {
                return Err(Error::format(
                    &path,
                    "this folder holds a run: continue it with --resume, or replace it with --force",
                ));
            }
            for f in [CONFIG_FILE, METRICS_FILE, STATE_FILE, MODEL_FILE, BEST_FILE, KERNELS_FILE] {
                let p = path.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
        }
        let run_config = RunConfig {
            config: cfg.clone(),
            data: spec.clone(),
            train_samples: split.train.rows,
            test_samples: split.test.rows,
            classes: split.class_names.clone(),
            device: device.to_string(),
        };
        let text = serde_json::to_string_pretty(&run_config).expect("config serialises");
        write_atomic(&path.join(CONFIG_FILE), text.as_bytes())?;
        let mpath = path.join(METRICS_FILE);
        let metrics = std::fs::File::create(&mpath).map_err(|e| Error::io(&mpath, e))?;
        Ok(RunDir { path, metrics, meta: weights_metadata(split, spec, device), _lock: lock })
    }

    /// Reopens the folder of `resume` to continue it on `device`: the metrics log is cut
    /// back to what the checkpoint had seen (a crash may have logged past it), then
    /// appended to.
    pub fn reopen(resume: &Resume, split: &Split, device: &str) -> Result<Self> {
        let path = &resume.dir;
        let lock = Lock::take(path)?;
        let step = resume.progress.checkpoint_step.unwrap_or(0);
        let mpath = path.join(METRICS_FILE);
        let text = std::fs::read_to_string(&mpath).map_err(|e| Error::io(&mpath, e))?;
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        write_atomic(&mpath, kept.as_bytes())?;
        let metrics = std::fs::OpenOptions::new().append(true).open(&mpath).map_err(|e| Error::io(&mpath, e))?;
        Ok(RunDir { path: path.clone(), metrics, meta: weights_metadata(split, &resume.data, device), _lock: lock })
    }

    fn log(&mut self, record: &Record) -> Result<()> {
        let line = serde_json::to_string(record).expect("record serialises");
        writeln!(self.metrics, "{line}").map_err(|e| Error::io(self.path.join(METRICS_FILE), e))
    }
}

impl Journal for RunDir {
    fn interval(&mut self, r: &IntervalRecord) -> Result<()> {
        self.log(&Record::Interval(r.clone()))
    }

    fn epoch(&mut self, r: &EpochRecord) -> Result<()> {
        self.log(&Record::Epoch(r.clone()))
    }

    /// Writes the training state (atomically), then the weights.
    fn checkpoint(&mut self, cfg: &Config, p: &Progress, engine: &mut dyn Engine) -> Result<()> {
        self.metrics.sync_data().map_err(|e| Error::io(self.path.join(METRICS_FILE), e))?;
        let params = engine.params()?;
        let state = engine.optim_state()?;
        let mut meta = self.meta.clone();
        meta.insert(META_PROGRESS.into(), serde_json::to_string(p).expect("progress serialises"));
        meta.insert(META_CONFIG.into(), serde_json::to_string(cfg).expect("config serialises"));
        checkpoint::save_state(&self.path.join(STATE_FILE), &params, &state, meta)?;
        checkpoint::save_weights(&self.path.join(MODEL_FILE), &cfg.model, &params, self.meta.clone())
    }

    fn best(&mut self, cfg: &Config, params: &[f32]) -> Result<()> {
        checkpoint::save_weights(&self.path.join(BEST_FILE), &cfg.model, params, self.meta.clone())
    }

    fn location(&self) -> &Path {
        &self.path
    }
}

/// A checkpoint read back for `--resume`.
pub struct Resume {
    /// The run folder.
    pub dir: PathBuf,
    pub config: Config,
    pub data: DataSpec,
    pub progress: Progress,
    pub params: Vec<f32>,
    pub optim_state: Vec<Vec<f32>>,
    /// The device the run trained on, in words.
    pub device: Option<String>,
}

/// Reads `run_dir/state.safetensors`.
pub fn load_resume(run_dir: &Path) -> Result<Resume> {
    let path = run_dir.join(STATE_FILE);
    if !path.is_file() {
        return Err(Error::format(run_dir, format!("no {STATE_FILE} here: not a run folder with a checkpoint")));
    }
    let st = checkpoint::load_state(&path)?;
    let field =
        |key: &str| st.metadata.get(key).ok_or_else(|| Error::format(&path, format!("metadata `{key}` is missing")));
    let json = |key: &str| Error::format(&path, format!("metadata `{key}` is unreadable"));
    let config: Config = serde_json::from_str(field(META_CONFIG)?).map_err(|_| json(META_CONFIG))?;
    let progress: Progress = serde_json::from_str(field(META_PROGRESS)?).map_err(|_| json(META_PROGRESS))?;
    let data: DataSpec = serde_json::from_str(field(META_DATA)?).map_err(|_| json(META_DATA))?;
    if st.params.len() != config.model.param_count() {
        return Err(Error::format(
            &path,
            format!(
                "{} parameters but a model of {} (`{}`)",
                st.params.len(),
                config.model.param_count(),
                config.model.spec()
            ),
        ));
    }
    if st.state.len() != config.optimizer.kind.state_vectors() {
        return Err(Error::format(
            &path,
            format!("{} optimizer state vectors for {}", st.state.len(), config.optimizer.kind.name()),
        ));
    }
    Ok(Resume {
        dir: run_dir.to_path_buf(),
        config,
        data,
        progress,
        params: st.params,
        optim_state: st.state,
        device: st.metadata.get(META_DEVICE).cloned(),
    })
}

/// A run's log read back: its interval and epoch records in file order, and a label for
/// legends.
#[derive(Clone, Debug)]
pub struct RunLog {
    /// The run folder.
    pub dir: PathBuf,
    /// The folder's name, then the optimizer, batch and learning rate from `config.json`
    /// when it has them (e.g. `run-003 (sgd, batch 1, lr 0.01)`).
    pub label: String,
    pub intervals: Vec<IntervalRecord>,
    pub epochs: Vec<EpochRecord>,
}

impl RunLog {
    /// Reads `dir/metrics.jsonl` (required) and `dir/config.json` (optional, for the label).
    /// A line that is not a JSON record of a known kind with the expected fields is an
    /// error naming the file and line; records of other kinds are skipped.
    pub fn read(dir: &Path) -> Result<RunLog> {
        let path = dir.join(METRICS_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let (intervals, epochs) = parse_metrics(&path, &text)?;
        Ok(RunLog { dir: dir.to_path_buf(), label: run_label(dir), intervals, epochs })
    }
}

/// Parses the text of a `metrics.jsonl`; `path` is for messages.
pub fn parse_metrics(path: &Path, text: &str) -> Result<(Vec<IntervalRecord>, Vec<EpochRecord>)> {
    let mut intervals = Vec::new();
    let mut epochs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fail = |what: String| Error::format(path, format!("line {}: {what}", i + 1));
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| fail(format!("not a JSON record ({e})")))?;
        let kind = value.get("kind").and_then(|k| k.as_str()).map(str::to_owned);
        match kind.as_deref() {
            Some("interval" | "epoch") => match serde_json::from_value(value) {
                Ok(Record::Interval(r)) => intervals.push(r),
                Ok(Record::Epoch(r)) => epochs.push(r),
                Err(e) => {
                    return Err(fail(format!(
                        "not {} record: {e}",
                        if kind.as_deref() == Some("epoch") { "an epoch" } else { "an interval" }
                    )))
                }
            },
            Some(_) => {}
            None => return Err(fail("a record without a \"kind\" field".into())),
        }
    }
    Ok((intervals, epochs))
}

/// The run's legend label: the folder name, and what `config.json` says about the
/// optimizer, batch size and base learning rate, if it can be read (the label asks only
/// for those fields, so a partial or older configuration still names its run).
fn run_label(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string());
    let summary = std::fs::read_to_string(dir.join(CONFIG_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| config_summary(&v["config"]));
    match summary {
        Some(s) => format!("{name} ({s})"),
        None => name,
    }
}

/// `sgd, batch 1, lr 0.01` from a run's `config` object.
fn config_summary(cfg: &serde_json::Value) -> Option<String> {
    let kind: OptimKind = serde_json::from_value(cfg["optimizer"]["kind"].clone()).ok()?;
    let batch: BatchSize = serde_json::from_value(cfg["batch"].clone()).ok()?;
    let lr = cfg["optimizer"]["lr"].as_f64()?;
    let batch = match batch {
        BatchSize::Mini(b) => format!("batch {b}"),
        BatchSize::Full => "full batch".into(),
    };
    // The learning rate was an f32: show it at f32 precision (0.001, not 0.0010000000474974513).
    Some(format!("{}, {batch}, lr {}", kind.name(), lr as f32))
}
