//! The training loop: epochs of shuffled batches streamed by a producer thread, the
//! three regimes of the lecture (mini-batches, pure SGD with `B = 1`, and batch gradient
//! descent with one step per epoch on the gradient of the whole training risk), learning
//! rate schedules, metrics per logging interval and per epoch, early stopping, and the
//! run folder (configuration, JSON-lines metrics, weights).

use crate::checkpoint;
use crate::data::batches::{batch_count, epoch_order};
use crate::data::{Dataset, Split};
use crate::engine::{Batch, Engine, Tally};
use crate::error::{Error, Result};
use crate::model::Mlp;
use crate::optim::{LrSchedule, Optimizer, Schedule};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How many samples each step sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchSize {
    /// Mini-batches of this many samples (1 is pure SGD); the tail batch is kept.
    Mini(usize),
    /// The whole training set: one step per epoch on the full-risk gradient.
    Full,
}

/// Rows per chunk when a full-batch gradient is accumulated, and per evaluation batch.
pub const CHUNK: usize = 1024;

/// Everything that defines a training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    pub sizes: Vec<usize>,
    pub epochs: usize,
    pub batch: BatchSize,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub seed: u64,
    /// Steps per logging interval.
    pub log_every: usize,
    /// Stop when the test loss has not improved for this many epochs.
    pub early_stop: Option<usize>,
}

impl Config {
    /// The rows the engine must hold at once.
    pub fn max_batch(&self) -> usize {
        match self.batch {
            BatchSize::Mini(b) => b.max(CHUNK),
            BatchSize::Full => CHUNK,
        }
    }
}

/// One epoch's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    pub kind: String,
    pub epoch: usize,
    pub step: u64,
    pub samples_seen: u64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub lr: f32,
    pub epoch_seconds: f64,
    pub elapsed_s: f64,
    pub samples_per_s: f64,
}

/// One logging interval's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IntervalRecord {
    pub kind: String,
    pub epoch: usize,
    pub step: u64,
    pub samples_seen: u64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub lr: f32,
    pub elapsed_s: f64,
}

/// What the user watches while training runs.
pub trait Observer {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize);
    fn step(&mut self, done: usize, running_loss: Option<f64>, samples_per_s: f64);
    fn epoch_end(&mut self, r: &EpochRecord);
    fn note(&mut self, msg: &str);
}

/// An observer that stays silent (tests, benchmarks).
pub struct Quiet;

impl Observer for Quiet {
    fn epoch_start(&mut self, _: usize, _: usize, _: usize) {}
    fn step(&mut self, _: usize, _: Option<f64>, _: f64) {}
    fn epoch_end(&mut self, _: &EpochRecord) {}
    fn note(&mut self, _: &str) {}
}

/// A run folder: `config.json`, `metrics.jsonl`, `model.safetensors`.
pub struct RunDir {
    pub path: PathBuf,
    metrics: std::fs::File,
}

impl RunDir {
    /// Creates `path` (or, when `None`, the next free `runs/run-NNN`) and writes the
    /// configuration into it.
    pub fn create(path: Option<&Path>, config_json: &serde_json::Value) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                (1..).map(|i| PathBuf::from(format!("runs/run-{i:03}"))).find(|p| !p.exists()).expect("a free run name")
            }
        };
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let cfg = path.join("config.json");
        let text = serde_json::to_string_pretty(config_json).expect("config serialises");
        checkpoint::write_atomic(&cfg, text.as_bytes())?;
        let mpath = path.join("metrics.jsonl");
        let metrics = std::fs::File::create(&mpath).map_err(|e| Error::io(&mpath, e))?;
        Ok(RunDir { path, metrics })
    }

    fn log<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).expect("record serialises");
        writeln!(self.metrics, "{line}").map_err(|e| Error::io(self.path.join("metrics.jsonl"), e))
    }
}

/// The result of a run.
pub struct Outcome {
    pub epochs: Vec<EpochRecord>,
    pub params: Vec<f32>,
    pub stopped_early: bool,
}

/// Trains `engine` on `split` as `cfg` says, logging into `run` when given.
pub fn train(
    cfg: &Config,
    split: &Split,
    engine: &mut dyn Engine,
    mut run: Option<&mut RunDir>,
    obs: &mut dyn Observer,
) -> Result<Outcome> {
    let mlp = Mlp::new(cfg.sizes.clone())?;
    let train = &split.train;
    let n = train.rows;
    let steps_per_epoch = match cfg.batch {
        BatchSize::Mini(b) => batch_count(n, b),
        BatchSize::Full => 1,
    };
    let mut sched = LrSchedule::new(cfg.optimizer.lr, cfg.schedule, cfg.epochs, steps_per_epoch);
    let mut step: u64 = 0;
    let mut seen: u64 = 0;
    let mut epochs = Vec::new();
    let mut best_test = f64::INFINITY;
    let mut since_best = 0;
    let mut stopped_early = false;
    let start = Instant::now();
    for epoch in 0..cfg.epochs {
        let t0 = Instant::now();
        let order = epoch_order(cfg.seed, epoch, n);
        obs.epoch_start(epoch, cfg.epochs, steps_per_epoch);
        let mut epoch_tally = Tally::default();
        let lr = sched.lr(step);
        match cfg.batch {
            BatchSize::Full => {
                let chunks: Vec<&[u32]> = order.chunks(CHUNK).collect();
                stream(train, &chunks, engine, |engine, i, b| engine.accumulate(b, 1.0 / n as f32, i == 0))?;
                step += 1;
                engine.update(&cfg.optimizer.step(step, lr))?;
                seen += n as u64;
                let t = engine.take_tally()?;
                check_finite(&t, step, lr)?;
                epoch_tally.add(t);
                log_interval(&mut run, epoch, step, seen, &t, lr, &start)?;
                obs.step(1, Some(t.loss()), n as f64 / t0.elapsed().as_secs_f64());
            }
            BatchSize::Mini(b) => {
                let batches: Vec<&[u32]> = order.chunks(b).collect();
                let mut pending = 0u64;
                stream(train, &batches, engine, |engine, i, batch| {
                    let lr = sched.lr(step);
                    step += 1;
                    engine.train_step(batch, &cfg.optimizer.step(step, lr))?;
                    seen += batch.idx.len() as u64;
                    pending += 1;
                    let last = i + 1 == batches.len();
                    if pending as usize >= cfg.log_every || last {
                        pending = 0;
                        let t = engine.take_tally()?;
                        check_finite(&t, step, lr)?;
                        epoch_tally.add(t);
                        log_interval(&mut run, epoch, step, seen, &t, lr, &start)?;
                        let rate = epoch_tally.samples as f64 / t0.elapsed().as_secs_f64();
                        obs.step(i + 1, Some(t.loss()), rate);
                    } else {
                        obs.step(i + 1, None, (i + 1) as f64 * b as f64 / t0.elapsed().as_secs_f64());
                    }
                    Ok(())
                })?;
            }
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let test = engine.evaluate(&split.test)?;
        let record = EpochRecord {
            kind: "epoch".into(),
            epoch: epoch + 1,
            step,
            samples_seen: seen,
            train_loss: epoch_tally.loss(),
            train_acc: epoch_tally.accuracy(),
            test_loss: test.loss(),
            test_acc: test.accuracy(),
            lr,
            epoch_seconds: t0.elapsed().as_secs_f64(),
            elapsed_s: start.elapsed().as_secs_f64(),
            samples_per_s: n as f64 / train_seconds,
        };
        if let Some(r) = run.as_deref_mut() {
            r.log(&record)?;
        }
        obs.epoch_end(&record);
        if let Some(new_lr) = sched.end_epoch(record.train_loss) {
            obs.note(&format!("training risk levelled off: learning rate now {new_lr:e}"));
        }
        epochs.push(record);
        if let Some(patience) = cfg.early_stop {
            if test.loss() < best_test {
                best_test = test.loss();
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= patience {
                    obs.note(&format!("test loss has not improved for {patience} epochs: stopping early"));
                    stopped_early = true;
                    break;
                }
            }
        }
    }
    let params = engine.params()?;
    if let Some(r) = run {
        let mut meta = HashMap::new();
        meta.insert("wgtrain.classes".into(), serde_json::to_string(&split.class_names).expect("names serialise"));
        checkpoint::save_weights(&r.path.join("model.safetensors"), &mlp, &params, meta)?;
    }
    Ok(Outcome { epochs, params, stopped_early })
}

/// Runs `f` on each batch in order while a producer thread gathers the next ones
/// (a bounded queue of 4, so gathering overlaps computing).
pub fn stream<E: Engine + ?Sized>(
    data: &Dataset,
    batches: &[&[u32]],
    engine: &mut E,
    mut f: impl FnMut(&mut E, usize, &Batch) -> Result<()>,
) -> Result<()> {
    let how = engine.gather();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
        s.spawn(move || {
            for idx in batches {
                if tx.send(Batch::gather(data, idx.to_vec(), how)).is_err() {
                    return; // the consumer stopped (an error): stop gathering
                }
            }
        });
        for (i, b) in rx.iter().enumerate() {
            f(engine, i, &b)?;
        }
        Ok(())
    })
}

fn check_finite(t: &Tally, step: u64, lr: f32) -> Result<()> {
    if t.bad_steps > 0 {
        return Err(Error::NonFinite(format!(
            "the loss became NaN or infinite by step {step} (learning rate {lr:e}); that step's update was \
             skipped, so the weights are the last good ones. Try a lower learning rate."
        )));
    }
    Ok(())
}

fn log_interval(
    run: &mut Option<&mut RunDir>,
    epoch: usize,
    step: u64,
    seen: u64,
    t: &Tally,
    lr: f32,
    start: &Instant,
) -> Result<()> {
    if let Some(r) = run.as_deref_mut() {
        r.log(&IntervalRecord {
            kind: "interval".into(),
            epoch: epoch + 1,
            step,
            samples_seen: seen,
            train_loss: t.loss(),
            train_acc: t.accuracy(),
            lr,
            elapsed_s: start.elapsed().as_secs_f64(),
        })?;
    }
    Ok(())
}
