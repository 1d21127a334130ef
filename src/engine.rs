//! The two places a network trains, behind one interface: the CPU (GEMM-crate ops, both
//! cores) and the GPU (the recorded step of [`crate::gpu::net`]). The trainer in
//! [`crate::train`] drives either the same way.

use crate::cpu::{net, ops};
use crate::data::augment::{self, Draws};
use crate::data::batches::{Batch, Gather};
use crate::data::{Dataset, FeatureData};
use crate::error::{Error, Result};
use crate::gpu::net::{Features, GpuNet, Precision, TableId};
use crate::gpu::Gpu;
use crate::model::{Model, Shape};
use crate::optim::{OptimKind, OptimStep};

/// Metrics summed over some batches.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    pub loss_sum: f64,
    pub correct: u64,
    pub samples: u64,
    /// Steps whose loss was not finite (their updates were skipped).
    pub bad_steps: u64,
}

impl Tally {
    pub fn add(&mut self, o: Tally) {
        self.loss_sum += o.loss_sum;
        self.correct += o.correct;
        self.samples += o.samples;
        self.bad_steps += o.bad_steps;
    }

    /// Mean loss (NaN with no samples).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// Fraction correct (NaN with no samples).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.samples as f64
    }
}

impl From<crate::gpu::kernels::Stats> for Tally {
    fn from(s: crate::gpu::kernels::Stats) -> Self {
        Tally {
            loss_sum: f64::from(s.loss_sum),
            correct: u64::from(s.correct),
            samples: u64::from(s.samples),
            bad_steps: u64::from(s.bad_steps),
        }
    }
}

/// A device that trains the network.
pub trait Engine {
    /// The device, in words.
    fn describe(&self) -> String;
    /// What each batch must carry.
    fn gather(&self) -> Gather;
    /// Sets the random draws of the epoch's training steps — dropout masks and the
    /// augmentation — keyed by seed, epoch and each sample's index in the data set
    /// (before the first call: seed 0, epoch 0, no augmentation).
    fn begin_epoch(&mut self, d: Draws) -> Result<()>;
    /// One mini-batch step: the gradient of the batch's mean loss, then the update.
    fn train_step(&mut self, b: &Batch, opt: &OptimStep) -> Result<()>;
    /// Consecutive mini-batch steps, `batches[i]` with `opts[i]`: exactly what
    /// `train_step` on each in turn does (the GPU submits a run of them at once).
    fn train_steps(&mut self, batches: &[Batch], opts: &[OptimStep]) -> Result<()> {
        if batches.len() != opts.len() {
            return Err(Error::shape("Engine::train_steps", format!("{} optimizer steps", batches.len()), opts.len()));
        }
        batches.iter().zip(opts).try_for_each(|(b, o)| self.train_step(b, o))
    }
    /// Adds `scale·Σ ∇loss` over the batch to the gradient (overwrites it when `first`).
    fn accumulate(&mut self, b: &Batch, scale: f32, first: bool) -> Result<()>;
    /// Applies the update with the accumulated gradient.
    fn update(&mut self, opt: &OptimStep) -> Result<()>;
    /// Values in the parameter vector (and in the gradient).
    fn param_count(&self) -> usize;
    /// Writes the gradient accumulated so far into `out` ([`Self::param_count`] values;
    /// the GPU reads it back).
    fn gradient_into(&mut self, out: &mut [f32]) -> Result<()>;
    /// Replaces the accumulated gradient with `g` (a data-parallel step's reduced one,
    /// [`crate::parallel`]) and clears the non-finite flag: the next `update` applies `g`.
    fn set_gradient(&mut self, g: &[f32]) -> Result<()>;
    /// Training metrics since the last call (the GPU reads them back here, and only here).
    fn take_tally(&mut self) -> Result<Tally>;
    /// Loss and accuracy over a whole data set.
    fn evaluate(&mut self, data: &Dataset) -> Result<Tally>;
    /// Softmax probabilities `[N, C]` for every sample of `data`.
    fn predict(&mut self, data: &Dataset) -> Result<Vec<f32>>;
    /// The flat parameter vector.
    fn params(&mut self) -> Result<Vec<f32>>;
    /// The optimizer's state vectors.
    fn optim_state(&mut self) -> Result<Vec<Vec<f32>>>;
    /// Replaces parameters and optimizer state (resume).
    fn set_state(&mut self, params: &[f32], state: &[Vec<f32>]) -> Result<()>;
}

/// Rows evaluated at once on the CPU.
const CPU_EVAL_CHUNK: usize = 1024;

/// Training on the CPU with the GEMM-crate ops.
pub struct CpuEngine {
    model: Model,
    kind: OptimKind,
    params: Vec<f32>,
    grads: Vec<f32>,
    s1: Vec<f32>,
    s2: Vec<f32>,
    ws: net::Workspace<f32>,
    draws: Draws,
    /// The augmented batch (empty without augmentation).
    augmented: Vec<f32>,
    tally: Tally,
    /// Whether the gradient being accumulated has seen a non-finite loss.
    step_bad: bool,
}

impl CpuEngine {
    pub fn new(model: &Model, params: Vec<f32>, kind: OptimKind, max_batch: usize) -> Self {
        let m = model.param_count();
        let state = |i: usize| {
            if kind.state_vectors() > i {
                vec![0.0; m]
            } else {
                Vec::new()
            }
        };
        CpuEngine {
            model: model.clone(),
            kind,
            params,
            grads: vec![0.0; m],
            s1: state(0),
            s2: state(1),
            ws: net::Workspace::new(model, max_batch.max(CPU_EVAL_CHUNK)),
            draws: Draws::default(),
            augmented: Vec::new(),
            tally: Tally::default(),
            step_bad: false,
        }
    }
}

impl CpuEngine {
    /// Runs the forward pass over `data` in chunks of [`CPU_EVAL_CHUNK`] rows, calling
    /// `f(workspace, first row, rows)` with each chunk's activations.
    fn forward_chunks(&mut self, data: &Dataset, mut f: impl FnMut(&mut net::Workspace<f32>, usize, usize)) {
        let mut x = vec![0.0f32; CPU_EVAL_CHUNK * data.width];
        for start in (0..data.rows).step_by(CPU_EVAL_CHUNK) {
            let n = CPU_EVAL_CHUNK.min(data.rows - start);
            for i in 0..n {
                data.row_f32(start + i, &mut x[i * data.width..(i + 1) * data.width]);
            }
            let x = &x[..n * data.width];
            net::forward(&self.model, &self.params, x, n, &mut self.ws, net::Kernels::Fast, None);
            f(&mut self.ws, start, n);
        }
    }
}

impl Engine for CpuEngine {
    fn describe(&self) -> String {
        format!("CPU ({} threads for matrix products)", std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn gather(&self) -> Gather {
        Gather::F32
    }

    fn begin_epoch(&mut self, d: Draws) -> Result<()> {
        self.draws = d;
        Ok(())
    }

    fn train_step(&mut self, b: &Batch, opt: &OptimStep) -> Result<()> {
        self.accumulate(b, 1.0 / b.idx.len() as f32, true)?;
        self.update(opt)
    }

    fn accumulate(&mut self, b: &Batch, scale: f32, first: bool) -> Result<()> {
        let n = b.idx.len();
        if first {
            self.step_bad = false;
        }
        let x = match (self.draws.augment.is_none(), self.model.input) {
            (false, Shape::Image { c, h, w }) => {
                self.augmented.resize(b.x.len(), 0.0);
                let d = &self.draws;
                augment::augment(&b.x, &mut self.augmented, &b.idx, (c, h, w), d.seed, d.epoch, &d.augment);
                &self.augmented
            }
            _ => &b.x,
        };
        let (loss, correct) = net::loss_and_grad(
            &self.model,
            &self.params,
            x,
            &b.labels,
            n,
            scale,
            &mut self.grads,
            !first,
            &mut self.ws,
            net::Kernels::Fast,
            net::Draw { seed: self.draws.seed, epoch: self.draws.epoch, samples: &b.idx },
        );
        // As the GPU's metrics kernel: a non-finite batch is not counted and blocks the update.
        if loss.is_finite() {
            self.tally.add(Tally { loss_sum: loss, correct, samples: n as u64, bad_steps: 0 });
        } else if !self.step_bad {
            self.step_bad = true;
            self.tally.bad_steps += 1;
        }
        Ok(())
    }

    fn update(&mut self, opt: &OptimStep) -> Result<()> {
        if !self.step_bad {
            ops::optimizer_update(&mut self.params, &self.grads, &mut self.s1, &mut self.s2, opt);
        }
        Ok(())
    }

    fn param_count(&self) -> usize {
        self.params.len()
    }

    fn gradient_into(&mut self, out: &mut [f32]) -> Result<()> {
        if out.len() != self.grads.len() {
            return Err(Error::shape("Engine::gradient_into", format!("{} values", self.grads.len()), out.len()));
        }
        out.copy_from_slice(&self.grads);
        Ok(())
    }

    fn set_gradient(&mut self, g: &[f32]) -> Result<()> {
        if g.len() != self.grads.len() {
            return Err(Error::shape("Engine::set_gradient", format!("{} values", self.grads.len()), g.len()));
        }
        self.grads.copy_from_slice(g);
        self.step_bad = false;
        Ok(())
    }

    fn take_tally(&mut self) -> Result<Tally> {
        Ok(std::mem::take(&mut self.tally))
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Tally> {
        let mut t = Tally::default();
        let c = self.model.classes();
        let mut dz = vec![0.0f32; CPU_EVAL_CHUNK * c];
        self.forward_chunks(data, |ws, start, n| {
            let labels = &data.labels[start..start + n];
            let logits = ws.acts.last().expect("layers");
            ops::softmax_xent(logits, labels, 1.0, &mut ws.loss, &mut ws.correct, &mut dz, n, c);
            let (l, k) = ops::accumulate_stats(&ws.loss[..n], &ws.correct[..n]);
            t.add(Tally { loss_sum: f64::from(l), correct: u64::from(k), samples: n as u64, bad_steps: 0 });
        });
        Ok(t)
    }

    fn predict(&mut self, data: &Dataset) -> Result<Vec<f32>> {
        let c = self.model.classes();
        let mut probs = vec![0.0f32; data.rows * c];
        self.forward_chunks(data, |ws, start, n| {
            let logits = &ws.acts.last().expect("layers")[..n * c];
            ops::softmax(logits, &mut probs[start * c..(start + n) * c], n, c);
        });
        Ok(probs)
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn optim_state(&mut self) -> Result<Vec<Vec<f32>>> {
        Ok([&self.s1, &self.s2].into_iter().take(self.kind.state_vectors()).cloned().collect())
    }

    fn set_state(&mut self, params: &[f32], state: &[Vec<f32>]) -> Result<()> {
        let m = self.model.param_count();
        if params.len() != m || state.len() != self.kind.state_vectors() || state.iter().any(|s| s.len() != m) {
            return Err(Error::shape(
                "set_state",
                format!("{m} parameters and {} state vectors of {m}", self.kind.state_vectors()),
                format!(
                    "{} parameters and state vectors of {:?}",
                    params.len(),
                    state.iter().map(Vec::len).collect::<Vec<_>>()
                ),
            ));
        }
        self.params.copy_from_slice(params);
        for (dst, src) in [&mut self.s1, &mut self.s2].into_iter().zip(state) {
            dst.copy_from_slice(src);
        }
        Ok(())
    }
}

/// Builds the engine that trains `model` from `params` on `gpu`, or on the CPU when `None`:
/// optimizer state for `kind`, room for `max_batch` rows, and on a GPU the training set
/// as `mode` says — but streamed when it does not fit one binding of the adapter (the
/// engine's [`Engine::describe`] then says "streamed"); the matrix products in
/// `precision` (mixed: GPU only).
#[allow(clippy::too_many_arguments)]
pub fn open<'g>(
    gpu: Option<&'g Gpu>,
    model: &Model,
    params: Vec<f32>,
    kind: OptimKind,
    max_batch: usize,
    train: &Dataset,
    mode: DataMode,
    precision: Precision,
) -> Result<Box<dyn Engine + 'g>> {
    check_memory(gpu.is_some(), model, kind, max_batch, train)?;
    let Some(g) = gpu else {
        if precision == Precision::Mixed {
            return Err(Error::invalid(
                "--precision",
                "mixed",
                "a GPU adapter: the CPU trains in f32 only (add --device gpu; a new run can take --precision f32)",
            ));
        }
        return Ok(Box::new(CpuEngine::new(model, params, kind, max_batch)));
    };
    let bytes = match &train.features {
        FeatureData::U8(v) => v.len() as u64,
        FeatureData::F32(v) => 4 * v.len() as u64,
    };
    let mode =
        if mode == DataMode::Resident && g.check_binding("data", bytes).is_err() { DataMode::Streaming } else { mode };
    Ok(Box::new(GpuEngine::new(g, model, &params, kind, max_batch, train, mode, precision)?))
}

/// The host memory, in bytes, that training `model` with `kind` at up to `max_batch` rows
/// on `train` needs at its peak. On the CPU: the parameters, their gradient and the
/// optimizer's state vectors (4 bytes each), the activations and their gradients for the
/// rows of a batch (or an evaluation chunk) across every layer, and the data. On a GPU
/// (whose own limits `GpuNet::check_fits` checks) the host keeps the initial parameters
/// and the data. Both add what a checkpoint holds for a moment: a copy of the parameters
/// and the optimizer's state, and the same again serialized.
pub fn memory_estimate(on_gpu: bool, model: &Model, kind: OptimKind, max_batch: usize, train: &Dataset) -> u64 {
    let params = model.param_count() as u64;
    let data = match &train.features {
        FeatureData::U8(v) => v.len() as u64,
        FeatureData::F32(v) => 4 * v.len() as u64,
    } + 4 * train.labels.len() as u64;
    let state = kind.state_vectors() as u64;
    let checkpoint = 2 * (1 + state) * params * 4;
    if on_gpu {
        return params * 4 + checkpoint + data;
    }
    let rows = max_batch.max(CPU_EVAL_CHUNK) as u64;
    let widths: u64 = model.nodes().iter().map(|n| n.out_len as u64).sum::<u64>() + model.inputs() as u64;
    params * (2 + state) * 4 + rows * widths * 4 * 2 + checkpoint + data
}

/// The memory the kernel says is available for new allocations (`MemAvailable` in
/// `/proc/meminfo`), in bytes; `None` where that file is absent or unreadable.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses, with the figures, a model whose [`memory_estimate`] exceeds
/// [`available_memory`] (never refuses where that is unknown). Call it before the
/// parameters are allocated.
pub fn check_memory(on_gpu: bool, model: &Model, kind: OptimKind, max_batch: usize, train: &Dataset) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let needed = memory_estimate(on_gpu, model, kind, max_batch, train);
    if needed <= available {
        return Ok(());
    }
    let place = if on_gpu { "the host side of a GPU run" } else { "the CPU" };
    Err(Error::OutOfMemory {
        what: format!(
            "the network `{}` ({} parameters, {} optimizer, {} rows at once) on {place}",
            model.spec(),
            model.param_count(),
            kind.name(),
            max_batch.max(CPU_EVAL_CHUNK)
        ),
        needed,
        available,
        hint: "use a smaller model (--hidden, --model) or --batch".into(),
    })
}

/// How the GPU gets its samples (`--data-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
pub enum DataMode {
    /// The whole training set uploaded once; each step sends only its indices.
    Resident,
    /// Each batch's rows gathered on the host and uploaded every step.
    Streaming,
}

/// Training on a GPU adapter.
pub struct GpuEngine<'g> {
    gpu: &'g Gpu,
    net: GpuNet<'g>,
    train: TableId,
    mode: DataMode,
    /// `0, 1, …, max_batch − 1`: the rows a streamed batch occupies.
    identity: Vec<u32>,
    /// Resident test sets, by their source (uploaded on first evaluation).
    eval_tables: Vec<(std::path::PathBuf, usize, TableId)>,
}

fn features(data: &FeatureData) -> Features<'_> {
    match data {
        FeatureData::U8(v) => Features::U8(v),
        FeatureData::F32(v) => Features::F32(v),
    }
}

impl<'g> GpuEngine<'g> {
    /// Builds the network on `gpu` for batches of up to `max_batch`, with the training
    /// set resident or streamed and the matrix products in `precision`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gpu: &'g Gpu,
        model: &Model,
        params: &[f32],
        kind: OptimKind,
        max_batch: usize,
        train: &Dataset,
        mode: DataMode,
        precision: Precision,
    ) -> Result<Self> {
        let mut net = GpuNet::new(gpu, model, params, kind, max_batch, precision)?;
        let table = match mode {
            DataMode::Resident => net.add_table(features(&train.features), &train.labels)?,
            DataMode::Streaming => net.add_stream_table(matches!(train.features, FeatureData::U8(_)))?,
        };
        let identity = (0..max_batch as u32).collect();
        Ok(GpuEngine { gpu, net, train: table, mode, identity, eval_tables: Vec::new() })
    }

    fn stream(&self, b: &Batch) -> Result<()> {
        if self.mode == DataMode::Streaming {
            let rows = b.rows.as_ref().ok_or_else(|| {
                Error::precondition("GpuEngine::stream", "a batch gathered with its rows (Gather::Raw)")
            })?;
            self.net.write_stream(self.train, features(rows), &b.labels, &b.idx)?;
        }
        Ok(())
    }

    /// The device table holding `data` for evaluation (uploaded on first use). Training
    /// metrics pending on the device must have been taken before.
    fn eval_table(&mut self, data: &Dataset) -> Result<TableId> {
        let pending = self.net.take_stats()?;
        if pending.samples != 0 || pending.bad_steps != 0 {
            return Err(Error::precondition("GpuEngine::evaluate", "the training metrics to have been read first"));
        }
        let known = self.eval_tables.iter().find(|(p, r, _)| *p == data.source && *r == data.rows).map(|t| t.2);
        Ok(match known {
            Some(t) => t,
            None => {
                let t = self.net.add_table(features(&data.features), &data.labels)?;
                self.eval_tables.push((data.source.clone(), data.rows, t));
                t
            }
        })
    }

    /// The indices the device reads: the batch's own in resident mode, 0..B when streamed
    /// (no allocation per step).
    fn device_idx<'b>(mode: DataMode, identity: &'b [u32], b: &'b Batch) -> &'b [u32] {
        match mode {
            DataMode::Resident => &b.idx,
            DataMode::Streaming => &identity[..b.idx.len()],
        }
    }
}

impl Engine for GpuEngine<'_> {
    fn describe(&self) -> String {
        format!(
            "GPU {} ({} data{})",
            self.gpu.describe(),
            if self.mode == DataMode::Resident { "resident" } else { "streamed" },
            if self.net.precision() == Precision::Mixed { ", mixed precision" } else { "" }
        )
    }

    fn gather(&self) -> Gather {
        match self.mode {
            DataMode::Resident => Gather::Indices,
            DataMode::Streaming => Gather::Raw,
        }
    }

    fn begin_epoch(&mut self, d: Draws) -> Result<()> {
        self.net.begin_epoch(&d)
    }

    fn train_step(&mut self, b: &Batch, opt: &OptimStep) -> Result<()> {
        self.stream(b)?;
        let idx = Self::device_idx(self.mode, &self.identity, b);
        self.net.train_step(self.train, idx, opt)
    }

    /// Resident data: one submission per run of up to `RUN_SLOTS` steps. Streamed data
    /// overwrites one device table per step, so it goes step by step.
    fn train_steps(&mut self, batches: &[Batch], opts: &[OptimStep]) -> Result<()> {
        if self.mode == DataMode::Streaming {
            if batches.len() != opts.len() {
                let expected = format!("{} optimizer steps", batches.len());
                return Err(Error::shape("Engine::train_steps", expected, opts.len()));
            }
            return batches.iter().zip(opts).try_for_each(|(b, o)| self.train_step(b, o));
        }
        let idx: Vec<&[u32]> = batches.iter().map(|b| b.idx.as_slice()).collect();
        self.net.train_steps(self.train, &idx, opts)
    }

    fn accumulate(&mut self, b: &Batch, scale: f32, first: bool) -> Result<()> {
        self.stream(b)?;
        let idx = Self::device_idx(self.mode, &self.identity, b);
        self.net.accumulate_gradient(self.train, idx, scale, first)
    }

    fn update(&mut self, opt: &OptimStep) -> Result<()> {
        self.net.apply_update(opt)
    }

    fn param_count(&self) -> usize {
        self.net.model.param_count()
    }

    fn gradient_into(&mut self, out: &mut [f32]) -> Result<()> {
        self.net.read_grads_into(out)
    }

    fn set_gradient(&mut self, g: &[f32]) -> Result<()> {
        self.net.write_grads(g)
    }

    fn take_tally(&mut self) -> Result<Tally> {
        Ok(self.net.take_stats()?.into())
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<Tally> {
        let table = self.eval_table(data)?;
        let chunk = self.net.max_batch;
        for start in (0..data.rows).step_by(chunk) {
            let idx: Vec<u32> = (start as u32..(start + chunk).min(data.rows) as u32).collect();
            self.net.eval_batch(table, &idx)?;
        }
        Ok(self.net.take_stats()?.into())
    }

    fn predict(&mut self, data: &Dataset) -> Result<Vec<f32>> {
        let table = self.eval_table(data)?;
        let c = self.net.model.classes();
        let mut probs = vec![0.0f32; data.rows * c];
        for start in (0..data.rows).step_by(self.net.max_batch) {
            let end = (start + self.net.max_batch).min(data.rows);
            let idx: Vec<u32> = (start as u32..end as u32).collect();
            let logits = self.net.logits(table, &idx)?;
            ops::softmax(&logits, &mut probs[start * c..end * c], end - start, c);
        }
        self.net.take_stats()?;
        Ok(probs)
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.net.read_params()
    }

    fn optim_state(&mut self) -> Result<Vec<Vec<f32>>> {
        self.net.read_state()
    }

    fn set_state(&mut self, params: &[f32], state: &[Vec<f32>]) -> Result<()> {
        self.net.write_state(params, state)
    }
}

impl GpuEngine<'_> {
    /// Device memory held by the network and its data (bytes).
    pub fn memory_bytes(&self) -> u64 {
        self.net.memory_bytes()
    }

    /// One training step with a per-dispatch GPU time breakdown (ms), if the adapter has
    /// timestamp queries.
    pub fn profile_step(&mut self, b: &Batch, opt: &OptimStep) -> Result<Option<Vec<(String, f64)>>> {
        self.stream(b)?;
        let idx = Self::device_idx(self.mode, &self.identity, b);
        self.net.profile_step(self.train, idx, opt)
    }
}
