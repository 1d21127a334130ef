//! A run folder's records, parsed into typed series: `metrics.jsonl` (one JSON object a
//! line, `kind` "interval" or "epoch", as `crate::train` writes them) and a label for the
//! run from `config.json`.

use crate::error::{Error, Result};
use crate::optim::OptimKind;
use crate::train::BatchSize;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};

/// One logging interval: the mean training loss (the training risk estimate) and accuracy
/// over the interval's batches, at the step that ended it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Interval {
    pub epoch: usize,
    pub step: u64,
    pub samples_seen: u64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_loss: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_acc: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub lr: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub elapsed_s: f64,
}

/// One epoch: training metrics over the epoch's batches, the test set's loss and accuracy
/// after it, and the step and time it ended at.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Epoch {
    pub epoch: usize,
    pub step: u64,
    pub samples_seen: u64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_loss: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_acc: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub test_loss: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub test_acc: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub lr: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub elapsed_s: f64,
}

/// JSON has no NaN: serde_json writes a non-finite `f64` as `null`, which reads back as NaN.
fn number_or_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A run's log: its interval and epoch records in file order, and a label for legends.
#[derive(Clone, Debug)]
pub struct RunLog {
    /// The run folder.
    pub dir: PathBuf,
    /// The folder's name, then the optimizer, batch and learning rate from `config.json`
    /// when it has them (e.g. `run-003 (sgd, batch 1, lr 0.01)`).
    pub label: String,
    pub intervals: Vec<Interval>,
    pub epochs: Vec<Epoch>,
}

impl RunLog {
    /// Reads `dir/metrics.jsonl` (required) and `dir/config.json` (optional, for the label).
    /// A line that is not a JSON record of a known kind with the expected fields is an
    /// error naming the file and line; records of other kinds are skipped.
    pub fn read(dir: &Path) -> Result<RunLog> {
        let path = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let (intervals, epochs) = parse_metrics(&path, &text)?;
        Ok(RunLog { dir: dir.to_path_buf(), label: run_label(dir), intervals, epochs })
    }
}

/// Parses the text of a `metrics.jsonl`; `path` is for messages.
pub fn parse_metrics(path: &Path, text: &str) -> Result<(Vec<Interval>, Vec<Epoch>)> {
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
            Some("interval") => {
                intervals.push(serde_json::from_value(value).map_err(|e| fail(format!("not an interval record: {e}")))?)
            }
            Some("epoch") => {
                epochs.push(serde_json::from_value(value).map_err(|e| fail(format!("not an epoch record: {e}")))?)
            }
            Some(_) => {}
            None => return Err(fail("a record without a \"kind\" field".into())),
        }
    }
    Ok((intervals, epochs))
}

/// The run's legend label: the folder name, and what `config.json` says about the
/// optimizer, batch size and base learning rate, if it can be read.
fn run_label(dir: &Path) -> String {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string());
    let summary = std::fs::read_to_string(dir.join("config.json"))
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
