//! `wgtrain bench`: the standard workloads of BENCHMARKS.md trained for a fixed number of
//! steps after a warm-up, on Fashion-MNIST, with plain SGD (lr 0.1), shuffled batches and
//! the real data path. Throughput includes waiting for the device: the timed span ends
//! with a read-back of the metrics, which waits for every step.

use crate::data::batches::epoch_order;
use crate::data::Dataset;
use crate::engine::{Engine, GpuEngine};
use crate::error::Result;
use crate::model::Mlp;
use crate::optim::{OptimKind, Optimizer};
use crate::train::stream;
use serde::Serialize;
use std::time::Instant;

/// A network and batch size to time.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub name: String,
    pub sizes: Vec<usize>,
    pub batch: usize,
}

impl Workload {
    pub fn new(name: &str, sizes: &[usize], batch: usize) -> Self {
        Workload {
            name: name.into(),
            sizes: sizes.to_vec(),
            batch,
        }
    }
}

/// The standard workloads, and a batch-size sweep of `small`.
pub fn workloads(sweep: bool) -> Vec<Workload> {
    let mut w = vec![
        Workload::new("small", &[784, 256, 128, 10], 128),
        Workload::new("wide", &[784, 1024, 1024, 10], 256),
    ];
    if sweep {
        for b in [1, 16, 64, 512, 2048] {
            w.push(Workload::new(
                &format!("small-b{b}"),
                &[784, 256, 128, 10],
                b,
            ));
        }
    }
    w
}

/// One workload's measurement on one device.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub workload: String,
    pub device: String,
    pub batch: usize,
    pub steps: usize,
    pub samples_per_s: f64,
    pub ms_per_step: f64,
    pub gflops: f64,
    /// The first step, pipelines and uploads included, to its completion.
    pub first_step_ms: f64,
    /// Per-dispatch GPU time of one step (ms), where the adapter has timestamps.
    pub kernels: Option<Vec<(String, f64)>>,
}

/// Times `steps` steps of `w` after `warmup` steps on `engine` (built for `w`).
pub fn measure(
    engine: &mut dyn Engine,
    data: &Dataset,
    w: &Workload,
    warmup: usize,
    steps: usize,
) -> Result<Measurement> {
    let mlp = Mlp::new(w.sizes.clone())?;
    let opt = Optimizer::new(OptimKind::Sgd, 0.1);
    let total = warmup + steps + 1;
    let mut order = Vec::new();
    let mut epoch = 0;
    while order.len() < total * w.batch {
        order.extend(epoch_order(1, epoch, data.rows));
        epoch += 1;
    }
    let batches: Vec<&[u32]> = order.chunks(w.batch).take(total).collect();
    let t0 = Instant::now();
    stream(data, &batches[..1], engine, |e, _, b| {
        e.train_step(b, &opt.step(1, opt.lr))
    })?;
    engine.take_tally()?;
    let first_step_ms = t0.elapsed().as_secs_f64() * 1e3;
    stream(data, &batches[1..1 + warmup], engine, |e, _, b| {
        e.train_step(b, &opt.step(2, opt.lr))
    })?;
    engine.take_tally()?;
    let t = Instant::now();
    stream(data, &batches[1 + warmup..], engine, |e, _, b| {
        e.train_step(b, &opt.step(3, opt.lr))
    })?;
    engine.take_tally()?;
    let secs = t.elapsed().as_secs_f64();
    let samples_per_s = (steps * w.batch) as f64 / secs;
    Ok(Measurement {
        workload: w.name.clone(),
        device: engine.describe(),
        batch: w.batch,
        steps,
        samples_per_s,
        ms_per_step: secs * 1e3 / steps as f64,
        gflops: samples_per_s * mlp.train_flops_per_sample() as f64 / 1e9,
        first_step_ms,
        kernels: None,
    })
}

/// Adds a per-dispatch profile of one more step to a GPU measurement.
pub fn profile(
    engine: &mut GpuEngine,
    data: &Dataset,
    w: &Workload,
    m: &mut Measurement,
) -> Result<()> {
    let order = epoch_order(2, 0, data.rows);
    let batch = crate::engine::Batch::gather(data, order[..w.batch].to_vec(), engine.gather());
    let opt = Optimizer::new(OptimKind::Sgd, 0.1);
    m.kernels = engine.profile_step(&batch, &opt.step(1, opt.lr))?;
    engine.take_tally()?;
    Ok(())
}
