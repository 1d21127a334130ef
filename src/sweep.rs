//! `wgtrain sweep`: the same model, from the same initial weights and in the same data
//! order, trained at several learning rates one after another, each in its own run folder
//! (`<out>/lr-<α>`), then compared: a summary table (`sweep.csv`) and the training risks
//! on one chart (`sweep.svg/png`). A run that diverges — a non-finite loss, a final
//! training risk above the starting one (the initial weights' risk on the training set),
//! or a logged risk above [`BLOW_UP`]× the starting one — is kept and marked, not an error
//! for the sweep.
//!
//! The learning rates ([`cli::LrList`]) are a comma list (`0.001,0.01,0.1,1`) or a log range `A..B:N`:
//! `N ≥ 2` rates from `A` to `B` evenly spaced in `log α`, each rounded to three
//! significant digits (`1e-3..1:7` is 0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1).

use crate::cli::{self, TrainArgs};
use crate::data::Split;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::Model;
use crate::run::{DataSpec, RunDir, RunLog};
use crate::train::{self, Config, Control, Observer};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One run of a sweep, as its folder's records say.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRun {
    pub lr: f32,
    pub dir: PathBuf,
    /// The training risk of the initial weights (the whole training set).
    pub start_risk: f64,
    /// The last and the lowest logged training risk (NaN when nothing was logged).
    pub final_risk: f64,
    pub best_risk: f64,
    /// The validation loss and test accuracy after the last finished epoch (NaN if none).
    pub val_loss: f64,
    pub test_acc: f64,
    /// The steps trained.
    pub steps: u64,
    /// The step a non-finite loss stopped the run at, if it did.
    pub stopped: Option<u64>,
    /// Why the run counts as diverged, if it does.
    pub diverged: Option<String>,
}

/// A finished sweep.
pub struct Sweep {
    pub out: PathBuf,
    pub runs: Vec<SweepRun>,
    /// The summary table, the chart: the files written.
    pub files: Vec<PathBuf>,
}

impl Sweep {
    /// The run with the lowest validation loss (else final training risk) among those
    /// that did not diverge.
    pub fn best(&self) -> Option<&SweepRun> {
        let key = |r: &SweepRun| if r.val_loss.is_finite() { r.val_loss } else { r.final_risk };
        self.runs.iter().filter(|r| r.diverged.is_none() && key(r).is_finite()).min_by(|a, b| key(a).total_cmp(&key(b)))
    }
}

/// The folder name of the run at `lr`: `lr-0.001`.
pub fn run_name(lr: f32) -> String {
    format!("lr-{lr}")
}

/// What every run of a sweep (and the LR range test) shares: the data, the configuration
/// at the base learning rate, the network and its initial weights, the device.
pub struct Setup {
    pub spec: DataSpec,
    pub split: Split,
    pub cfg: Config,
    pub model: Model,
    pub init: Vec<f32>,
    pub gpu: Option<Gpu>,
}

impl Setup {
    /// Loads the data `a` names and builds the configuration, the network (initialized
    /// from `--seed`) and the device; `note` gets the device choice's explanation.
    pub fn new(a: &TrainArgs, note: &mut dyn FnMut(&str)) -> Result<Setup> {
        let mut spec = a.data_spec();
        let split = spec.load()?;
        let cfg = a.config(&split)?;
        let model = cfg.model.clone();
        let (mut gpu, why) = Gpu::choose(a.dev.device, a.dev.adapter.as_deref())?;
        if let Some(g) = gpu.as_mut() {
            g.set_kernels(a.dev.kernels);
        }
        if let Some(why) = why {
            note(&why);
        }
        engine::check_memory(gpu.is_some(), &model, cfg.optimizer.kind, cfg.max_batch(), &split.train)?;
        let init = model.init(cfg.seed);
        Ok(Setup { spec, split, cfg, model, init, gpu })
    }

    /// A fresh engine at the initial weights.
    pub fn engine(&self, a: &TrainArgs) -> Result<Box<dyn Engine + '_>> {
        let (kind, rows) = (self.cfg.optimizer.kind, self.cfg.max_batch());
        let (gpu, train) = (self.gpu.as_ref(), &self.split.train);
        engine::open(gpu, &self.model, self.init.clone(), kind, rows, train, a.dev.data_mode, self.cfg.precision)
    }
}

/// The sweep folder: `--out`, else the next free `runs/sweep-NNN`.
fn out_dir(a: &TrainArgs) -> PathBuf {
    a.out.clone().unwrap_or_else(|| {
        (1..).map(|i| PathBuf::from(format!("runs/sweep-{i:03}"))).find(|p| !p.exists()).expect("a free name")
    })
}

/// Trains the model of `a` at each of `lrs` (every other flag of `a` applying to every
/// run), from the same initial weights, each into `<out>/lr-<α>`; then writes
/// `<out>/sweep.csv` and `<out>/sweep.svg/png`. `obs` watches each run; `say` gets a line
/// per run as it starts and ends.
pub fn sweep(a: &TrainArgs, lrs: &[f32], obs: &mut dyn Observer, say: &mut dyn FnMut(&str)) -> Result<Sweep> {
    if let Some(r) = &a.resume {
        return Err(Error::invalid("--resume", r.display(), "no --resume with sweep (each run starts afresh)"));
    }
    let setup = Setup::new(a, say)?;
    let out = out_dir(a);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let start_risk = setup.engine(a)?.evaluate(&setup.split.train)?.loss();
    let (s, net) = (&setup.split, cli::model_str(&setup.cfg.model));
    say(&format!(
        "sweeping {} learning rates: {net} on {} ({} train / {} validation / {} test samples), {}; \
         initial training risk {start_risk:.4}",
        lrs.len(),
        setup.spec.data.display(),
        s.train.rows,
        s.val.rows,
        s.test.rows,
        setup.cfg.describe().replacen(&format!(" lr {}", setup.cfg.optimizer.lr), "", 1),
    ));
    let mut runs = Vec::new();
    for &lr in lrs {
        let mut cfg = setup.cfg.clone();
        cfg.optimizer.lr = lr;
        let dir = out.join(run_name(lr));
        let mut engine = setup.engine(a)?;
        let device = engine.describe();
        let mut run = RunDir::create(Some(&dir), a.force, &cfg, &setup.spec, &setup.split, &device)?;
        say(&format!("α = {lr}: {} ({device})", dir.display()));
        let ctl = Control { checkpoint_every: a.checkpoint_every, stop_after: a.stop_after, ..Control::default() };
        let result = train::train(&cfg, &setup.split, engine.as_mut(), Some(&mut run), obs, None, &ctl);
        drop(run);
        let stopped = match result {
            Ok(_) => None,
            Err(Error::NonFinite { step, .. }) => Some(step),
            Err(e) => return Err(e),
        };
        let r = summarize(lr, &dir, start_risk, stopped)?;
        say(&format!("α = {lr}: {}", row_text(&r)));
        runs.push(r);
    }
    let mut sweep = Sweep { out: out.clone(), runs, files: Vec::new() };
    let csv = out.join("sweep.csv");
    crate::files::write_atomic(&csv, csv_text(&sweep.runs).as_bytes())?;
    sweep.files.push(csv);
    let lines = chart_lines(&sweep.runs)?;
    sweep.files.extend(crate::plot::plot_sweep(&lines, &out.join("sweep"))?);
    Ok(sweep)
}

/// A logged training risk above this many times the starting one marks a run as diverged,
/// even if it comes back down (it then typically sits at chance level, its ReLUs dead).
pub const BLOW_UP: f64 = 2.0;

/// A run's row from its folder's records; `stopped` is the step a non-finite loss stopped
/// it at.
pub fn summarize(lr: f32, dir: &Path, start_risk: f64, stopped: Option<u64>) -> Result<SweepRun> {
    let log = RunLog::read(dir)?;
    let risks: Vec<f64> = log.intervals.iter().map(|r| r.train_loss).collect();
    let final_risk = risks.last().copied().unwrap_or(f64::NAN);
    let best_risk = risks.iter().copied().filter(|v| v.is_finite()).fold(f64::NAN, f64::min);
    let last_epoch = log.epochs.last();
    let steps = stopped.unwrap_or_else(|| log.intervals.last().map_or(0, |r| r.step));
    let peak = risks.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let diverged = match stopped {
        Some(step) => Some(format!("non-finite loss at step {step}")),
        None if !final_risk.is_finite() || final_risk > start_risk => {
            Some(format!("training risk {final_risk:.3} above its start {start_risk:.3}"))
        }
        None if peak > BLOW_UP * start_risk => Some(format!("training risk blew up to {}", num(peak))),
        None => None,
    };
    Ok(SweepRun {
        lr,
        dir: dir.to_path_buf(),
        start_risk,
        final_risk,
        best_risk,
        val_loss: last_epoch.map_or(f64::NAN, |e| e.val_loss),
        test_acc: last_epoch.map_or(f64::NAN, |e| e.test_acc),
        steps,
        stopped,
        diverged,
    })
}

/// What the chart draws for each run: its label, `(step, training risk)` of every interval
/// record (as [`crate::plot::overlay_series`] against the step), and whether it diverged.
pub fn chart_lines(runs: &[SweepRun]) -> Result<Vec<crate::plot::SweepLine>> {
    runs.iter()
        .map(|r| {
            let log = RunLog::read(&r.dir)?;
            Ok(crate::plot::SweepLine {
                label: match (&r.diverged, r.stopped) {
                    (Some(_), Some(step)) => format!("α = {} (diverged: stopped at step {step})", r.lr),
                    (Some(_), None) => format!("α = {} (diverged)", r.lr),
                    (None, _) => format!("α = {}", r.lr),
                },
                points: crate::plot::overlay_series(&log, crate::plot::XAxis::Step),
                diverged: r.diverged.is_some(),
            })
        })
        .collect()
}

fn num(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e4 {
        format!("{v:.3e}")
    } else if v.is_finite() {
        format!("{v:.4}")
    } else {
        "-".into()
    }
}

fn row_text(r: &SweepRun) -> String {
    let how = r.diverged.as_deref().map_or(String::new(), |d| format!(", DIVERGED ({d})"));
    format!(
        "final training risk {}, best {}, validation loss {}, test accuracy {}{how}",
        num(r.final_risk),
        num(r.best_risk),
        num(r.val_loss),
        num(r.test_acc)
    )
}

/// `sweep.csv`: one row per run.
pub fn csv_text(runs: &[SweepRun]) -> String {
    let mut s = String::from("lr,final_train_risk,best_train_risk,val_loss,test_acc,steps,diverged,run\n");
    let f = |v: f64| if v.is_finite() { format!("{v}") } else { String::new() };
    for r in runs {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            r.lr,
            f(r.final_risk),
            f(r.best_risk),
            f(r.val_loss),
            f(r.test_acc),
            r.steps,
            r.diverged.is_some(),
            r.dir.display()
        );
    }
    s
}

/// The summary table for the terminal, the best run (by validation loss) marked `←`.
pub fn table(s: &Sweep) -> String {
    let best = s.best().map(|r| r.lr);
    let mut t = format!(
        "{:>10}  {:>11}  {:>10}  {:>9}  {:>9}  {}\n",
        "α", "final risk", "best risk", "val loss", "test acc", "diverged"
    );
    for r in &s.runs {
        let mark = if Some(r.lr) == best { "  ← best" } else { "" };
        let _ = writeln!(
            t,
            "{:>10}  {:>11}  {:>10}  {:>9}  {:>9}  {}{mark}",
            r.lr,
            num(r.final_risk),
            num(r.best_risk),
            num(r.val_loss),
            num(r.test_acc),
            r.diverged.as_deref().map_or("no".into(), |d| format!("yes: {d}")),
        );
    }
    t
}
