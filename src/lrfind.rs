//! `wgtrain lr-find`: the learning-rate range test (Smith 2017, as fastai runs it). One
//! short run from the initial weights whose learning rate grows geometrically every
//! mini-batch, from `start` to `end` over `steps` batches, recording each batch's loss;
//! it stops early once the smoothed loss exceeds 4× its minimum or a loss is not finite.
//! The loss is smoothed exponentially, `s_t = β s_{t−1} + (1−β) L_t` with `β = 0.98`,
//! and bias-corrected, `s_t / (1 − βᵗ)`. Two suggestions, as fastai's:
//! - *steepest*: the rate where the smoothed loss falls fastest against `log α`;
//! - *minimum / 10*: a tenth of the rate at the smoothed loss's minimum.
//!
//! Both are computed without the first tenth of the planned steps and the last five
//! recorded (fastai's trim: the start is noise, the end the blow-up).

use crate::data::batches::{epoch_order, stream};
use crate::error::{Error, Result};
use crate::sweep::Setup;
use crate::train::BatchSize;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// The smoothing factor of the loss.
pub const BETA: f64 = 0.98;
/// The scan stops once the smoothed loss exceeds this many times its minimum.
pub const DIVERGE_FACTOR: f64 = 4.0;

/// The range to scan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub start: f32,
    pub end: f32,
    pub steps: usize,
}

impl Range {
    /// The learning rate of step `i` (0-based): `start·(end/start)^(i/(steps−1))`.
    pub fn lr(&self, i: usize) -> f32 {
        let (a, b) = (f64::from(self.start), f64::from(self.end));
        (a * (b / a).powf(i as f64 / (self.steps.max(2) - 1) as f64)) as f32
    }
}

/// One step of the scan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub lr: f32,
    /// The mini-batch's mean loss (before the step's update).
    pub loss: f64,
    /// The bias-corrected exponentially smoothed loss.
    pub smoothed: f64,
}

/// The result of a range test.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFind {
    pub points: Vec<Point>,
    /// Why the scan ended before `steps`, if it did.
    pub stopped: Option<String>,
    /// The rate of steepest descent of the smoothed loss.
    pub steepest: f32,
    /// A tenth of the rate at the smoothed loss's minimum.
    pub min_div10: f32,
}

/// Runs the range test on `setup`'s model and data (the optimizer, batch size and seed of
/// its configuration; its learning rate is ignored), on `setup`'s device.
pub fn lr_find(setup: &Setup, a: &crate::cli::TrainArgs, range: Range) -> Result<LrFind> {
    let b = match setup.cfg.batch {
        BatchSize::Mini(b) => b,
        BatchSize::Full => return Err(Error::invalid("--batch", "full", "mini-batches for the range test")),
    };
    if !(range.start > 0.0 && range.start < range.end) {
        return Err(Error::invalid("--start", range.start, "a positive rate below --end"));
    }
    let train = &setup.split.train;
    // The batches of as many epochs as the steps need, each epoch in its seeded order.
    let epochs = range.steps.div_ceil(train.rows.div_ceil(b));
    let orders: Vec<Vec<u32>> = (0..epochs).map(|e| epoch_order(setup.cfg.seed, e, train.rows)).collect();
    let batches: Vec<&[u32]> = orders.iter().flat_map(|o| o.chunks(b)).take(range.steps).collect();
    let mut engine = setup.engine(a)?;
    let cfg = &setup.cfg;
    engine.begin_epoch(crate::data::augment::Draws { seed: cfg.seed, epoch: 0, augment: cfg.augment })?;
    let how = engine.gather();
    let opt = &setup.cfg.optimizer;
    let (mut points, mut stopped) = (Vec::<Point>::new(), None);
    let (mut avg, mut best) = (0.0f64, f64::INFINITY);
    stream(train, &batches, how, |i, batch| {
        let lr = range.lr(i);
        let t = i as u64 + 1;
        engine.train_step(batch, &opt.step(t, lr))?;
        let tally = engine.take_tally()?;
        let loss = tally.loss();
        if tally.bad_steps > 0 || !loss.is_finite() {
            stopped = Some(format!("the loss became non-finite at α = {lr:.2e} (step {t})"));
            return Ok(ControlFlow::Break(()));
        }
        avg = BETA * avg + (1.0 - BETA) * loss;
        let smoothed = avg / (1.0 - BETA.powi(t as i32));
        points.push(Point { lr, loss, smoothed });
        best = best.min(smoothed);
        if smoothed > DIVERGE_FACTOR * best {
            stopped = Some(format!("the smoothed loss exceeded {DIVERGE_FACTOR}× its minimum at α = {lr:.2e}"));
            return Ok(ControlFlow::Break(()));
        }
        Ok(ControlFlow::Continue(()))
    })?;
    let (steepest, min_div10) = suggestions(&points, range.steps)
        .ok_or_else(|| Error::invalid("--steps", range.steps, "enough steps before the loss blew up (try more)"))?;
    Ok(LrFind { points, stopped, steepest, min_div10 })
}

/// The steepest-descent and minimum/10 suggestions of a scan planned for `steps` steps;
/// `None` with fewer than three points.
pub fn suggestions(points: &[Point], steps: usize) -> Option<(f32, f32)> {
    let (skip_start, skip_end) = (steps / 10, 5);
    let kept =
        if points.len() > skip_start + skip_end + 2 { &points[skip_start..points.len() - skip_end] } else { points };
    if kept.len() < 3 {
        return None;
    }
    let slope = |w: &[Point]| (w[1].smoothed - w[0].smoothed) / (f64::from(w[1].lr) / f64::from(w[0].lr)).ln();
    let steep = kept.windows(2).min_by(|p, q| slope(p).total_cmp(&slope(q)))?[0].lr;
    let min = kept.iter().min_by(|p, q| p.smoothed.total_cmp(&q.smoothed))?.lr;
    Some((steep, min / 10.0))
}

/// `lr-find.csv`: one row per step.
pub fn csv_text(r: &LrFind) -> String {
    let mut s = String::from("step,lr,loss,smoothed_loss\n");
    for (i, p) in r.points.iter().enumerate() {
        let _ = writeln!(s, "{},{},{},{}", i + 1, p.lr, p.loss, p.smoothed);
    }
    s
}

/// What the chart draws: the smoothed loss against the rate, and the two suggestions.
pub fn chart_series(r: &LrFind) -> crate::plot::LrFindSeries {
    crate::plot::LrFindSeries {
        smoothed: r.points.iter().map(|p| (f64::from(p.lr), p.smoothed)).collect(),
        marks: vec![
            ("steepest descent".into(), f64::from(r.steepest)),
            ("minimum / 10".into(), f64::from(r.min_div10)),
        ],
    }
}

/// Writes `<out>/lr-find.csv` and `<out>/lr-find.svg/png`; returns the files.
pub fn write(r: &LrFind, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let csv = out.join("lr-find.csv");
    crate::files::write_atomic(&csv, csv_text(r).as_bytes())?;
    let mut files = vec![csv];
    files.extend(crate::plot::plot_lr_find(&chart_series(r), &out.join("lr-find"))?);
    Ok(files)
}

/// The run about to start, in a line: `range test: 784-256-128-10 with sgd, batch 128, …`.
pub fn describe(cfg: &crate::train::Config, range: &Range) -> String {
    let batch = match cfg.batch {
        crate::train::BatchSize::Mini(b) => format!("batch {b}"),
        crate::train::BatchSize::Full => "full batch".into(),
    };
    let net = crate::cli::model_str(&cfg.model);
    format!(
        "range test: {net} with {}, {batch}, from α = {:e} to {:e} over at most {} steps",
        cfg.optimizer.kind.name(),
        range.start,
        range.end,
        range.steps
    )
}

/// How the test ended and the two suggestions, a line each.
pub fn report(r: &LrFind) -> String {
    let last = r.points.last().map_or(f32::NAN, |p| p.lr);
    let ended = match &r.stopped {
        Some(why) => format!("{} steps, stopped: {why}", r.points.len()),
        None => format!("{} steps, up to α = {last:e}", r.points.len()),
    };
    format!(
        "{ended}\nsuggested learning rate: {:.2e} (steepest descent of the smoothed loss)\n                         \
         {:.2e} (minimum of the smoothed loss / 10)\n",
        r.steepest, r.min_div10
    )
}
