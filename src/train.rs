//! The training loop: epochs of shuffled batches streamed by a producer thread, the
//! three regimes of the lecture (mini-batches, pure SGD with `B = 1`, and batch gradient
//! descent with one step per epoch on the gradient of the whole training risk), learning
//! rate schedules, metrics per logging interval and per epoch, and early stopping.
//!
//! The loop knows nothing of files: it hands its records and checkpoints to a
//! [`Journal`] (the run folder of [`crate::run`] implements it).

use crate::data::augment::{Augment, Draws};
use crate::data::batches::{batch_count, epoch_order, stream, stream_owned, Batch};
use crate::data::Split;
use crate::engine::{Engine, Tally};
use crate::error::{Error, Result};
use crate::gpu::net::Precision;
use crate::model::Model;
use crate::optim::{LrSchedule, OptimStep, Optimizer, Schedule};
use serde::{Deserialize, Deserializer, Serialize};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How many samples each step sees. Recorded as the CLI spells it: a number, or `"full"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    /// Mini-batches of this many samples (1 is pure SGD); the tail batch is kept.
    Mini(usize),
    /// The whole training set: one step per epoch on the full-risk gradient.
    Full,
}

impl Serialize for BatchSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            BatchSize::Mini(b) => s.serialize_u64(*b as u64),
            BatchSize::Full => s.serialize_str("full"),
        }
    }
}

impl<'de> Deserialize<'de> for BatchSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Mini(usize),
            Name(String),
        }
        match Repr::deserialize(d)? {
            Repr::Mini(b) if b >= 1 => Ok(BatchSize::Mini(b)),
            Repr::Name(n) if n == "full" => Ok(BatchSize::Full),
            _ => Err(serde::de::Error::custom("a batch size ≥ 1 or \"full\"")),
        }
    }
}

/// Rows per chunk when a full-batch gradient is accumulated, and per evaluation batch.
pub const CHUNK: usize = 1024;

/// Mini-batch steps handed to the engine at once at most (the GPU submits them together):
/// a run ends earlier at every logging, checkpoint and stop boundary. A Ctrl-C seen while
/// a run is gathered ends it at that step, so the stop lands where it did step by step;
/// only its latency grows, by at most one run.
pub const MAX_RUN: usize = 64;

/// Everything that defines a training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// The network (configurations written before layer sequences hold `sizes`, an MLP's).
    #[serde(alias = "sizes")]
    pub model: Model,
    /// Training images flipped and shifted (`--augment`; none in runs written before it).
    #[serde(default)]
    pub augment: Augment,
    pub epochs: usize,
    pub batch: BatchSize,
    pub optimizer: Optimizer,
    pub schedule: Schedule,
    pub seed: u64,
    /// Steps per logging interval.
    pub log_every: usize,
    /// Stop when the validation loss has not improved for this many epochs.
    pub early_stop: Option<usize>,
    /// The matrix products' precision (`--precision`; f32 in runs written before it).
    #[serde(default)]
    pub precision: Precision,
}

impl Config {
    /// How it trains, in words: `adam lr 0.001 (cosine), batch 128, 20 epochs`.
    pub fn describe(&self) -> String {
        let b = match self.batch {
            BatchSize::Mini(b) => format!("batch {b}"),
            BatchSize::Full => "full batch".into(),
        };
        let (opt, lr) = (self.optimizer.kind.name(), self.optimizer.lr);
        let aug = if self.augment.is_none() { String::new() } else { format!(", augment {}", self.augment) };
        let mixed = if self.precision == Precision::Mixed { ", mixed precision" } else { "" };
        format!("{opt} lr {lr} ({}), {b}, {} epochs{aug}{mixed}", self.schedule, self.epochs)
    }

    /// The rows the engine must hold at once.
    pub fn max_batch(&self) -> usize {
        match self.batch {
            BatchSize::Mini(b) => b.max(CHUNK),
            BatchSize::Full => CHUNK,
        }
    }
}

/// One epoch's results: training metrics over the epoch's batches, the validation and
/// test sets' loss and accuracy after it (validation NaN without a validation set), and
/// the step and time it ended at. (JSON has no NaN: a non-finite value is written as
/// `null` and reads back as NaN; records written before the validation split lack it.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub step: u64,
    pub samples_seen: u64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_loss: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_acc: f64,
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub val_loss: f64,
    #[serde(default = "nan", deserialize_with = "number_or_null")]
    pub val_acc: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub test_loss: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub test_acc: f64,
    pub lr: f32,
    #[serde(deserialize_with = "number_or_null")]
    pub epoch_seconds: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub elapsed_s: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub samples_per_s: f64,
}

/// One logging interval: the mean training loss (the training risk estimate) and
/// accuracy over the interval's batches, at the step that ended it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntervalRecord {
    pub epoch: usize,
    pub step: u64,
    pub samples_seen: u64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_loss: f64,
    #[serde(deserialize_with = "number_or_null")]
    pub train_acc: f64,
    pub lr: f32,
    #[serde(deserialize_with = "number_or_null")]
    pub elapsed_s: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// serde_json writes a non-finite `f64` as `null`; read it back as NaN.
fn number_or_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What the user watches while training runs.
pub trait Observer {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize);
    fn step(&mut self, done: usize, running_loss: Option<f64>, samples_per_s: f64);
    fn epoch_end(&mut self, r: &EpochRecord);
    fn note(&mut self, msg: &str);
}

/// Where a run's records and checkpoints go (the run folder, [`crate::run::RunDir`]).
pub trait Journal {
    /// Records a logging interval.
    fn interval(&mut self, r: &IntervalRecord) -> Result<()>;
    /// Records an epoch.
    fn epoch(&mut self, r: &EpochRecord) -> Result<()>;
    /// Writes a checkpoint to resume from: the engine's weights and optimizer state, and
    /// `p` (whose `checkpoint_step` is already this checkpoint's step).
    fn checkpoint(&mut self, cfg: &Config, p: &Progress, engine: &mut dyn Engine) -> Result<()>;
    /// Saves `params` as the best weights so far.
    fn best(&mut self, cfg: &Config, params: &[f32]) -> Result<()>;
    /// Where the checkpoints are, for messages.
    fn location(&self) -> &Path;
}

/// An observer that stays silent (tests, benchmarks).
pub struct Quiet;

impl Observer for Quiet {
    fn epoch_start(&mut self, _: usize, _: usize, _: usize) {}
    fn step(&mut self, _: usize, _: Option<f64>, _: f64) {}
    fn epoch_end(&mut self, _: &EpochRecord) {}
    fn note(&mut self, _: &str) {}
}

/// Where a run stands: everything needed to continue it exactly (stored with each
/// checkpoint). The epoch's order is a pure function of (seed, epoch), so the position
/// in it is the number of batches done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub step: u64,
    /// The current epoch (0-based) and the batches of it already done.
    pub epoch: usize,
    pub batch: usize,
    pub seen: u64,
    /// This epoch's training metrics so far.
    pub epoch_tally: Tally,
    pub schedule: Option<LrSchedule>,
    pub epochs: Vec<EpochRecord>,
    /// The best validation loss so far (for the best checkpoint and early stopping) and
    /// epochs since.
    #[serde(alias = "best_test")]
    pub best_val: Option<f64>,
    pub since_best: usize,
    /// Training time before this session (the wall clock restarts on resume).
    pub elapsed_s: f64,
    /// The step of the last checkpoint written.
    pub checkpoint_step: Option<u64>,
}

/// When to checkpoint and when to stop.
#[derive(Default)]
pub struct Control<'a> {
    /// Also checkpoint every this many steps (at the next logging boundary).
    pub checkpoint_every: Option<u64>,
    /// Stop (with a checkpoint) once this many steps are done.
    pub stop_after: Option<u64>,
    /// Set by a Ctrl-C handler: finish the step, checkpoint, stop.
    pub interrupt: Option<&'a AtomicBool>,
    /// Steps handed to the engine at once at most ([`MAX_RUN`] when `None`; 1 is step by
    /// step). The results do not depend on it.
    pub max_run: Option<usize>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    Completed,
    StoppedEarly,
    /// Stopped on request after this step, with a checkpoint to resume from.
    Interrupted(u64),
}

/// The result of a run.
pub struct Outcome {
    pub epochs: Vec<EpochRecord>,
    pub params: Vec<f32>,
    pub finish: Finish,
}

/// How one epoch's batches ended.
enum EpochEnd {
    /// Every batch of the epoch was done.
    Done,
    /// Stopped on request after this step, mid-epoch, with a checkpoint.
    Stopped(u64),
}

/// Trains `engine` on `split` as `cfg` says, from the start or from `resume`, logging and
/// checkpointing into `journal` when given.
pub fn train(
    cfg: &Config,
    split: &Split,
    engine: &mut dyn Engine,
    journal: Option<&mut dyn Journal>,
    obs: &mut dyn Observer,
    resume: Option<Progress>,
    ctl: &Control,
) -> Result<Outcome> {
    let n = split.train.rows;
    let steps_per_epoch = match cfg.batch {
        BatchSize::Mini(b) => batch_count(n, b),
        BatchSize::Full => 1,
    };
    let mut p = resume.unwrap_or_default();
    let sched = p
        .schedule
        .take()
        .unwrap_or_else(|| LrSchedule::new(cfg.optimizer.lr, cfg.schedule, cfg.epochs, steps_per_epoch));
    let start = Instant::now() - std::time::Duration::from_secs_f64(p.elapsed_s);
    let mut t = Trainer { cfg, split, engine, journal, obs, ctl, sched, start };
    let mut finish = Finish::Completed;
    while p.epoch < cfg.epochs {
        let t0 = Instant::now();
        t.obs.epoch_start(p.epoch, cfg.epochs, steps_per_epoch);
        t.engine.begin_epoch(Draws { seed: cfg.seed, epoch: p.epoch as u32, augment: cfg.augment })?;
        let lr = t.sched.lr(p.step);
        let end = match cfg.batch {
            BatchSize::Full => t.full_batch_epoch(&mut p, lr, t0)?,
            BatchSize::Mini(b) => t.mini_batch_epoch(&mut p, b, t0)?,
        };
        if let EpochEnd::Stopped(step) = end {
            finish = Finish::Interrupted(step);
            break;
        }
        if let Some(f) = t.end_epoch(&mut p, lr, t0)? {
            finish = f;
            break;
        }
    }
    let params = t.engine.params()?;
    Ok(Outcome { epochs: p.epochs, params, finish })
}

/// What one run's epochs share: the configuration, the data, the engine, where records
/// go, and the schedule.
struct Trainer<'a, 'j> {
    cfg: &'a Config,
    split: &'a Split,
    engine: &'a mut dyn Engine,
    journal: Option<&'j mut dyn Journal>,
    obs: &'a mut dyn Observer,
    ctl: &'a Control<'a>,
    sched: LrSchedule,
    /// When training started (moved back by the time already trained before a resume).
    start: Instant,
}

impl Trainer<'_, '_> {
    /// Whether the run must stop after `step` (`--stop-after`, Ctrl-C).
    fn stop_now(&self, step: u64) -> bool {
        self.ctl.stop_after.is_some_and(|s| step >= s) || self.ctl.interrupt.is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Batch gradient descent: the gradient of the whole training risk, accumulated over
    /// chunks of [`CHUNK`] rows in the epoch's order, then one update.
    fn full_batch_epoch(&mut self, p: &mut Progress, lr: f32, t0: Instant) -> Result<EpochEnd> {
        let n = self.split.train.rows;
        let order = epoch_order(self.cfg.seed, p.epoch, n);
        let chunks: Vec<&[u32]> = order.chunks(CHUNK).collect();
        let engine = &mut *self.engine;
        stream(&self.split.train, &chunks, engine.gather(), |i, b| {
            engine.accumulate(b, 1.0 / n as f32, i == 0).map(ControlFlow::Continue)
        })?;
        p.step += 1;
        self.engine.update(&self.cfg.optimizer.step(p.step, lr))?;
        p.seen += n as u64;
        p.batch = 1;
        let t = self.read_interval(p, lr)?;
        self.obs.step(1, Some(t.loss()), n as f64 / t0.elapsed().as_secs_f64());
        Ok(EpochEnd::Done)
    }

    /// Mini-batches of `b` in the epoch's order, from batch `p.batch` on (a resumed run
    /// starts mid-epoch). Metrics are read at fixed batch positions in each epoch (and
    /// when stopping), so a resumed run reads them where an uninterrupted one does.
    fn mini_batch_epoch(&mut self, p: &mut Progress, b: usize, t0: Instant) -> Result<EpochEnd> {
        let order = epoch_order(self.cfg.seed, p.epoch, self.split.train.rows);
        let batches: Vec<&[u32]> = order.chunks(b).collect();
        let done = p.batch;
        let mut last_ckpt = p.checkpoint_step.unwrap_or(0);
        let mut stopped = None;
        let split = self.split;
        let how = self.engine.gather();
        let max_run = self.ctl.max_run.unwrap_or(MAX_RUN).max(1);
        // The run of steps gathered but not yet handed to the engine.
        let mut run: (Vec<Batch>, Vec<OptimStep>) = (Vec::new(), Vec::new());
        stream_owned(&split.train, &batches[done.min(batches.len())..], how, |j, batch| {
            let i = done + j;
            let lr = self.sched.lr(p.step);
            p.step += 1;
            p.seen += batch.idx.len() as u64;
            p.batch = i + 1;
            run.0.push(batch);
            run.1.push(self.cfg.optimizer.step(p.step, lr));
            let last = i + 1 == batches.len();
            let stop = self.stop_now(p.step);
            let boundary = (i + 1).is_multiple_of(self.cfg.log_every) || last || stop;
            if !boundary && run.0.len() < max_run {
                return Ok(ControlFlow::Continue(()));
            }
            self.engine.train_steps(&run.0, &run.1)?;
            run.0.clear();
            run.1.clear();
            let rate = (p.batch - done) as f64 * b as f64 / t0.elapsed().as_secs_f64();
            if !boundary {
                self.obs.step(i + 1, None, rate);
                return Ok(ControlFlow::Continue(()));
            }
            let t = self.read_interval(p, lr)?;
            self.obs.step(i + 1, Some(t.loss()), rate);
            let due = self.ctl.checkpoint_every.is_some_and(|every| p.step - last_ckpt >= every);
            if (due || stop) && !last && self.checkpoint(p)? {
                last_ckpt = p.step;
            }
            if stop && !last {
                stopped = Some(p.step);
                return Ok(ControlFlow::Break(()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(stopped.map_or(EpochEnd::Done, EpochEnd::Stopped))
    }

    /// Takes the metrics since the last read, stops on a non-finite loss, adds them to the
    /// epoch's and records the interval.
    fn read_interval(&mut self, p: &mut Progress, lr: f32) -> Result<Tally> {
        let t = self.engine.take_tally()?;
        if t.bad_steps > 0 {
            let kept = match (&self.journal, p.checkpoint_step) {
                (Some(j), Some(s)) => format!("the last good checkpoint (step {s}) is in {}", j.location().display()),
                (Some(j), None) => {
                    format!("no checkpoint was written yet; {} holds the configuration", j.location().display())
                }
                (None, _) => "the weights in memory are the last good ones".into(),
            };
            return Err(Error::NonFinite { step: p.step, lr, kept });
        }
        p.epoch_tally.add(t);
        if let Some(j) = self.journal.as_deref_mut() {
            j.interval(&IntervalRecord {
                epoch: p.epoch + 1,
                step: p.step,
                samples_seen: p.seen,
                train_loss: t.loss(),
                train_acc: t.accuracy(),
                lr,
                elapsed_s: self.start.elapsed().as_secs_f64(),
            })?;
        }
        Ok(t)
    }

    /// Writes a checkpoint at `p` if there is a journal; says whether it did.
    fn checkpoint(&mut self, p: &mut Progress) -> Result<bool> {
        let Some(j) = self.journal.as_deref_mut() else { return Ok(false) };
        p.schedule = Some(self.sched.clone());
        p.elapsed_s = self.start.elapsed().as_secs_f64();
        p.checkpoint_step = Some(p.step);
        j.checkpoint(self.cfg, p, &mut *self.engine)?;
        Ok(true)
    }

    /// After an epoch's batches: the validation and test sets' metrics, the epoch's record,
    /// the schedule's end-of-epoch step, the checkpoint and the best weights (by the
    /// validation loss; the test set is only reported), early stopping. Returns how the
    /// run ends if it ends here.
    fn end_epoch(&mut self, p: &mut Progress, lr: f32, t0: Instant) -> Result<Option<Finish>> {
        let train_seconds = t0.elapsed().as_secs_f64();
        let val = match self.split.val.rows {
            0 => None,
            _ => Some(self.engine.evaluate(&self.split.val)?),
        };
        let test = self.engine.evaluate(&self.split.test)?;
        let record = EpochRecord {
            epoch: p.epoch + 1,
            step: p.step,
            samples_seen: p.seen,
            train_loss: p.epoch_tally.loss(),
            train_acc: p.epoch_tally.accuracy(),
            val_loss: val.map_or(f64::NAN, |v| v.loss()),
            val_acc: val.map_or(f64::NAN, |v| v.accuracy()),
            test_loss: test.loss(),
            test_acc: test.accuracy(),
            lr,
            epoch_seconds: train_seconds,
            elapsed_s: self.start.elapsed().as_secs_f64(),
            samples_per_s: (p.epoch_tally.samples as f64) / train_seconds,
        };
        if let Some(j) = self.journal.as_deref_mut() {
            j.epoch(&record)?;
        }
        self.obs.epoch_end(&record);
        let (watched, what) = match self.cfg.schedule.watches_val() {
            true => (record.val_loss, "validation loss"),
            false => (record.train_loss, "training risk"),
        };
        if let Some(new_lr) = self.sched.end_epoch(watched) {
            self.obs.note(&format!("{what} levelled off: learning rate now {new_lr:e}"));
        }
        let improved = val.is_some_and(|v| p.best_val.is_none_or(|b| v.loss() < b));
        if improved {
            p.best_val = val.map(|v| v.loss());
            p.since_best = 0;
        } else {
            p.since_best += 1;
        }
        p.epochs.push(record);
        p.epoch += 1;
        p.batch = 0;
        p.epoch_tally = Tally::default();
        if self.checkpoint(p)? && improved {
            let params = self.engine.params()?;
            if let Some(j) = self.journal.as_deref_mut() {
                j.best(self.cfg, &params)?;
            }
        }
        if let Some(patience) = self.cfg.early_stop {
            if p.since_best >= patience {
                self.obs.note(&format!("validation loss has not improved for {patience} epochs: stopping early"));
                return Ok(Some(Finish::StoppedEarly));
            }
        }
        if self.stop_now(p.step) && p.epoch < self.cfg.epochs {
            return Ok(Some(Finish::Interrupted(p.step)));
        }
        Ok(None)
    }
}
