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
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A run folder: `config.json`, `metrics.jsonl`, `model.safetensors` (the weights, for
/// PyTorch and `wgtrain eval`), `state.safetensors` (weights, optimizer state and
/// progress, for `--resume`) and `best.safetensors` (the weights of the best test loss).
pub struct RunDir {
    pub path: PathBuf,
    metrics: std::fs::File,
    /// Metadata stored with every weights file (class names, device).
    meta: HashMap<String, String>,
}

/// The file `--resume` reads.
pub const STATE_FILE: &str = "state.safetensors";

impl RunDir {
    /// Creates `path` (or, when `None`, the next free `runs/run-NNN`) and writes the
    /// configuration into it. `meta` goes into every weights file.
    pub fn create(path: Option<&Path>, config_json: &serde_json::Value, meta: HashMap<String, String>) -> Result<Self> {
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
        Ok(RunDir { path, metrics, meta })
    }

    /// Reopens a run folder to resume it: the metrics log is cut back to what the
    /// checkpoint at `step` had seen (a crash may have logged past it), then appended to.
    pub fn reopen(path: &Path, step: u64, meta: HashMap<String, String>) -> Result<Self> {
        let mpath = path.join("metrics.jsonl");
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
        checkpoint::write_atomic(&mpath, kept.as_bytes())?;
        let metrics = std::fs::OpenOptions::new().append(true).open(&mpath).map_err(|e| Error::io(&mpath, e))?;
        Ok(RunDir { path: path.to_path_buf(), metrics, meta })
    }

    fn log<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).expect("record serialises");
        writeln!(self.metrics, "{line}").map_err(|e| Error::io(self.path.join("metrics.jsonl"), e))
    }

    /// The metadata stored with weights files.
    pub fn weights_metadata(&self) -> HashMap<String, String> {
        self.meta.clone()
    }

    /// Writes the training state (atomically), then the weights.
    fn checkpoint(&mut self, mlp: &Mlp, cfg: &Config, p: &mut Progress, engine: &mut dyn Engine) -> Result<()> {
        self.metrics.sync_data().map_err(|e| Error::io(self.path.join("metrics.jsonl"), e))?;
        let params = engine.params()?;
        let state = engine.optim_state()?;
        p.checkpoint_step = Some(p.step);
        let mut meta = self.meta.clone();
        meta.insert("wgtrain.progress".into(), serde_json::to_string(p).expect("progress serialises"));
        meta.insert("wgtrain.config".into(), serde_json::to_string(cfg).expect("config serialises"));
        checkpoint::save_state(&self.path.join(STATE_FILE), mlp, &params, &state, meta)?;
        checkpoint::save_weights(&self.path.join("model.safetensors"), mlp, &params, self.meta.clone())
    }
}

/// A checkpoint read back for `--resume`.
pub struct Resume {
    pub config: Config,
    pub progress: Progress,
    pub params: Vec<f32>,
    pub optim_state: Vec<Vec<f32>>,
    pub metadata: HashMap<String, String>,
}

/// Reads `RUN_DIR/state.safetensors`.
pub fn load_resume(run_dir: &Path) -> Result<Resume> {
    let path = run_dir.join(STATE_FILE);
    if !path.is_file() {
        return Err(Error::format(run_dir, format!("no {STATE_FILE} here: not a run folder with a checkpoint")));
    }
    let st = checkpoint::load_state(&path)?;
    let field =
        |key: &str| st.metadata.get(key).ok_or_else(|| Error::format(&path, format!("metadata `{key}` is missing")));
    let config: Config = serde_json::from_str(field("wgtrain.config")?)
        .map_err(|e| Error::format(&path, format!("metadata `wgtrain.config` is unreadable: {e}")))?;
    let progress: Progress = serde_json::from_str(field("wgtrain.progress")?)
        .map_err(|e| Error::format(&path, format!("metadata `wgtrain.progress` is unreadable: {e}")))?;
    if config.sizes != st.mlp.sizes {
        return Err(Error::format(
            &path,
            format!("weights of {:?} but a configuration of {:?}", st.mlp.sizes, config.sizes),
        ));
    }
    if st.state.len() != config.optimizer.kind.state_vectors() {
        return Err(Error::format(
            &path,
            format!("{} optimizer state vectors for {}", st.state.len(), config.optimizer.kind.name()),
        ));
    }
    Ok(Resume { config, progress, params: st.params, optim_state: st.state, metadata: st.metadata })
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
    /// Early stopping: the best test loss so far and epochs since.
    pub best_test: Option<f64>,
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

/// Trains `engine` on `split` as `cfg` says, from the start or from `resume`, logging and
/// checkpointing into `run` when given.
pub fn train(
    cfg: &Config,
    split: &Split,
    engine: &mut dyn Engine,
    mut run: Option<&mut RunDir>,
    obs: &mut dyn Observer,
    resume: Option<Progress>,
    ctl: &Control,
) -> Result<Outcome> {
    let mlp = Mlp::new(cfg.sizes.clone())?;
    let train = &split.train;
    let n = train.rows;
    let steps_per_epoch = match cfg.batch {
        BatchSize::Mini(b) => batch_count(n, b),
        BatchSize::Full => 1,
    };
    let mut p = resume.unwrap_or_default();
    let mut sched = p
        .schedule
        .take()
        .unwrap_or_else(|| LrSchedule::new(cfg.optimizer.lr, cfg.schedule, cfg.epochs, steps_per_epoch));
    let start = Instant::now() - std::time::Duration::from_secs_f64(p.elapsed_s);
    let mut finish = Finish::Completed;
    let stop_now = |step: u64| {
        ctl.stop_after.is_some_and(|s| step >= s) || ctl.interrupt.is_some_and(|f| f.load(Ordering::SeqCst))
    };
    'epochs: while p.epoch < cfg.epochs {
        let epoch = p.epoch;
        let t0 = Instant::now();
        let order = epoch_order(cfg.seed, epoch, n);
        obs.epoch_start(epoch, cfg.epochs, steps_per_epoch);
        let lr = sched.lr(p.step);
        let result = match cfg.batch {
            BatchSize::Full => {
                let chunks: Vec<&[u32]> = order.chunks(CHUNK).collect();
                stream(train, &chunks, engine, |engine, i, b| engine.accumulate(b, 1.0 / n as f32, i == 0))?;
                p.step += 1;
                engine.update(&cfg.optimizer.step(p.step, lr))?;
                p.seen += n as u64;
                p.batch = 1;
                let t = engine.take_tally()?;
                check_finite(&t, &p, lr, &run)?;
                p.epoch_tally.add(t);
                log_interval(&mut run, &p, &t, lr, &start)?;
                obs.step(1, Some(t.loss()), n as f64 / t0.elapsed().as_secs_f64());
                Ok(())
            }
            BatchSize::Mini(b) => {
                let batches: Vec<&[u32]> = order.chunks(b).collect();
                let done = p.batch;
                let mut last_ckpt = p.checkpoint_step.unwrap_or(0);
                let steps = &batches[done.min(batches.len())..];
                stream(train, steps, engine, |engine, j, batch| {
                    let i = done + j;
                    let lr = sched.lr(p.step);
                    p.step += 1;
                    engine.train_step(batch, &cfg.optimizer.step(p.step, lr))?;
                    p.seen += batch.idx.len() as u64;
                    p.batch = i + 1;
                    let last = i + 1 == batches.len();
                    let stop = stop_now(p.step);
                    // Metrics are read at fixed batch positions in each epoch (and when
                    // stopping), so a resumed run reads them where an uninterrupted one does.
                    if (i + 1).is_multiple_of(cfg.log_every) || last || stop {
                        let t = engine.take_tally()?;
                        check_finite(&t, &p, lr, &run)?;
                        p.epoch_tally.add(t);
                        log_interval(&mut run, &p, &t, lr, &start)?;
                        let rate = (p.batch - done) as f64 * b as f64 / t0.elapsed().as_secs_f64();
                        obs.step(i + 1, Some(t.loss()), rate);
                        let due = ctl.checkpoint_every.is_some_and(|every| p.step - last_ckpt >= every);
                        if (due || stop) && !last {
                            if let Some(r) = run.as_deref_mut() {
                                p.schedule = Some(sched.clone());
                                p.elapsed_s = start.elapsed().as_secs_f64();
                                r.checkpoint(&mlp, cfg, &mut p, engine)?;
                                last_ckpt = p.step;
                            }
                        }
                        if stop && !last {
                            return Err(Error::Interrupted(p.step));
                        }
                    } else {
                        obs.step(i + 1, None, (p.batch - done) as f64 * b as f64 / t0.elapsed().as_secs_f64());
                    }
                    Ok(())
                })
            }
        };
        match result {
            Err(Error::Interrupted(step)) => {
                finish = Finish::Interrupted(step);
                break 'epochs;
            }
            other => other?,
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let test = engine.evaluate(&split.test)?;
        let record = EpochRecord {
            kind: "epoch".into(),
            epoch: epoch + 1,
            step: p.step,
            samples_seen: p.seen,
            train_loss: p.epoch_tally.loss(),
            train_acc: p.epoch_tally.accuracy(),
            test_loss: test.loss(),
            test_acc: test.accuracy(),
            lr,
            epoch_seconds: train_seconds,
            elapsed_s: start.elapsed().as_secs_f64(),
            samples_per_s: (p.epoch_tally.samples as f64) / train_seconds,
        };
        if let Some(r) = run.as_deref_mut() {
            r.log(&record)?;
        }
        obs.epoch_end(&record);
        if let Some(new_lr) = sched.end_epoch(record.train_loss) {
            obs.note(&format!("training risk levelled off: learning rate now {new_lr:e}"));
        }
        let improved = p.best_test.is_none_or(|b| test.loss() < b);
        if improved {
            p.best_test = Some(test.loss());
            p.since_best = 0;
        } else {
            p.since_best += 1;
        }
        p.epochs.push(record);
        p.epoch += 1;
        p.batch = 0;
        p.epoch_tally = Tally::default();
        if let Some(r) = run.as_deref_mut() {
            p.schedule = Some(sched.clone());
            p.elapsed_s = start.elapsed().as_secs_f64();
            r.checkpoint(&mlp, cfg, &mut p, engine)?;
            if improved {
                let params = engine.params()?;
                checkpoint::save_weights(&r.path.join("best.safetensors"), &mlp, &params, r.weights_metadata())?;
            }
        }
        if let Some(patience) = cfg.early_stop {
            if p.since_best >= patience {
                obs.note(&format!("test loss has not improved for {patience} epochs: stopping early"));
                finish = Finish::StoppedEarly;
                break;
            }
        }
        if stop_now(p.step) && p.epoch < cfg.epochs {
            finish = Finish::Interrupted(p.step);
            break;
        }
    }
    let params = engine.params()?;
    Ok(Outcome { epochs: p.epochs, params, finish })
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

fn check_finite(t: &Tally, p: &Progress, lr: f32, run: &Option<&mut RunDir>) -> Result<()> {
    if t.bad_steps > 0 {
        let kept = match (run, p.checkpoint_step) {
            (Some(r), Some(s)) => format!("the last good checkpoint (step {s}) is in {}", r.path.display()),
            (Some(r), None) => format!("no checkpoint was written yet; {} holds the configuration", r.path.display()),
            (None, _) => "the weights in memory are the last good ones".into(),
        };
        return Err(Error::NonFinite(format!(
            "the loss became NaN or infinite by step {} (learning rate {lr:e}); that step's update was skipped \
             and the run stopped; {kept}. Try a lower learning rate.",
            p.step
        )));
    }
    Ok(())
}

fn log_interval(run: &mut Option<&mut RunDir>, p: &Progress, t: &Tally, lr: f32, start: &Instant) -> Result<()> {
    if let Some(r) = run.as_deref_mut() {
        r.log(&IntervalRecord {
            kind: "interval".into(),
            epoch: p.epoch + 1,
            step: p.step,
            samples_seen: p.seen,
            train_loss: t.loss(),
            train_acc: t.accuracy(),
            lr,
            elapsed_s: start.elapsed().as_secs_f64(),
        })?;
    }
    Ok(())
}
