//! `wgtrain bench`: the standard workloads (README's benchmark section) trained for a fixed number of
//! steps after a warm-up, on Fashion-MNIST, with plain SGD (lr 0.1), shuffled batches and
//! the real data path. Throughput includes waiting for the device: the timed span ends
//! with a read-back of the metrics, which waits for every step.

use crate::data::batches::{epoch_order, stream, stream_owned, Batch, Gather};
use crate::data::Dataset;
use crate::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use crate::error::{Error, Result};
use crate::gpu::net::Precision;
use crate::gpu::Gpu;
use crate::model::{Model, Spec};
use crate::optim::{OptimKind, OptimStep, Optimizer};
use serde::Serialize;
use std::ops::ControlFlow;
use std::time::Instant;

/// A network and batch size to time.
#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub name: String,
    /// The network as `--model` writes it, its last layer sized to the data's classes.
    pub model: String,
    pub batch: usize,
}

impl Workload {
    pub fn new(name: &str, model: &str, batch: usize) -> Self {
        Workload { name: name.into(), model: model.into(), batch }
    }

    /// The network on samples of `data`.
    pub fn model(&self, data: &Dataset) -> Result<Model> {
        Spec::parse(&self.model, &[])
            .map_err(|e| Error::invalid("workload", &self.name, e))?
            .build(data.shape, data.classes)
    }
}

const SMALL: &str = "linear:256,relu,linear:128,relu,linear";

/// The standard workloads, and a batch-size sweep of `small`.
pub fn workloads(sweep: bool) -> Vec<Workload> {
    let mut w = vec![
        Workload::new("small", SMALL, 128),
        Workload::new("wide", "linear:1024,relu,linear:1024,relu,linear", 256),
        Workload::new("cnn", "cnn", 128),
    ];
    if sweep {
        for b in [1, 16, 64, 512, 2048] {
            w.push(Workload::new(&format!("small-b{b}"), SMALL, b));
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
    /// Device memory held (bytes; GPU only).
    pub memory_bytes: Option<u64>,
    /// Wall time per step split: gathering a batch on the host (producer thread, overlapped),
    /// recording and submitting it (or computing it, on the CPU), and the final wait (ms).
    pub host_gather_ms: f64,
    pub submit_ms: f64,
    pub wait_ms: f64,
}

/// Times `steps` steps of `w` after `warmup` steps on `engine` (built for `w`).
pub fn measure(
    engine: &mut dyn Engine,
    data: &Dataset,
    w: &Workload,
    warmup: usize,
    steps: usize,
) -> Result<Measurement> {
    let model = w.model(data)?;
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
    let how = engine.gather();
    stream(data, &batches[..1], how, |_, b| engine.train_step(b, &opt.step(1, opt.lr)).map(ControlFlow::Continue))?;
    engine.take_tally()?;
    let first_step_ms = t0.elapsed().as_secs_f64() * 1e3;
    let warm = &batches[1..1 + warmup];
    runs(engine, data, warm, how, &opt.step(2, opt.lr))?;
    engine.take_tally()?;
    let timed = &batches[1 + warmup..];
    let t = Instant::now();
    let submit = runs(engine, data, timed, how, &opt.step(3, opt.lr))?;
    let waited = Instant::now();
    engine.take_tally()?;
    let wait = waited.elapsed().as_secs_f64();
    let secs = t.elapsed().as_secs_f64();
    let g = Instant::now();
    for idx in timed {
        std::hint::black_box(Batch::gather(data, idx.to_vec(), how));
    }
    let gather = g.elapsed().as_secs_f64();
    let samples_per_s = (steps * w.batch) as f64 / secs;
    Ok(Measurement {
        workload: w.name.clone(),
        device: engine.describe(),
        batch: w.batch,
        steps,
        samples_per_s,
        ms_per_step: secs * 1e3 / steps as f64,
        gflops: samples_per_s * model.train_flops_per_sample() as f64 / 1e9,
        first_step_ms,
        kernels: None,
        memory_bytes: None,
        host_gather_ms: gather * 1e3 / steps as f64,
        submit_ms: submit * 1e3 / steps as f64,
        wait_ms: wait * 1e3 / steps as f64,
    })
}

/// Trains on `batches` with `opt`, handing them to the engine in runs of
/// [`crate::train::MAX_RUN`] as training does; returns the seconds spent handing over.
fn runs(engine: &mut dyn Engine, data: &Dataset, batches: &[&[u32]], how: Gather, opt: &OptimStep) -> Result<f64> {
    let mut run = Vec::new();
    let mut submit = 0.0;
    stream_owned(data, batches, how, |i, b| {
        run.push(b);
        if run.len() == crate::train::MAX_RUN || i + 1 == batches.len() {
            let s = Instant::now();
            engine.train_steps(&run, &vec![*opt; run.len()])?;
            submit += s.elapsed().as_secs_f64();
            run.clear();
        }
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(submit)
}

/// Adds a per-dispatch profile of one more step to a GPU measurement.
pub fn profile(engine: &mut GpuEngine, data: &Dataset, w: &Workload, m: &mut Measurement) -> Result<()> {
    let order = epoch_order(2, 0, data.rows);
    let batch = Batch::gather(data, order[..w.batch].to_vec(), engine.gather());
    let opt = Optimizer::new(OptimKind::Sgd, 0.1);
    m.kernels = engine.profile_step(&batch, &opt.step(1, opt.lr))?;
    m.memory_bytes = Some(engine.memory_bytes());
    engine.take_tally()?;
    Ok(())
}

/// One kernel variant of one matrix product, timed.
#[derive(Clone, Debug, Serialize)]
pub struct GemmTiming {
    pub product: String,
    pub variant: String,
    /// The operands' element types ([`crate::gpu::gemm::Operands`]: F32, F16, F32F16).
    pub operands: String,
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub gflops: f64,
    pub ms: f64,
    /// Worst `|gpu − cpu| / bound` of the validation run (≤ 1 passes).
    pub error_ratio: f64,
}

/// Times every kernel variant of the three products of each linear layer of `model` at
/// batch `batch` (and, for batches of at most [`SMALL_BATCH`](crate::gpu::gemm::SMALL_BATCH)
/// rows, of the forward product on `W` itself, and where a product
/// [`transposes_a`](crate::gpu::gemm::Gemm::transposes_a), of its form on `Aᵀ`, as training
/// runs them), after checking each
/// against the CPU twin (a variant that fails is
/// reported, with its error, and never enters `shaders/`).
pub fn gemm_variants(
    gpu: &crate::gpu::Gpu,
    model: &Model,
    batch: usize,
    precision: Precision,
    reps: usize,
) -> Result<Vec<GemmTiming>> {
    use crate::cpu::ops;
    use crate::gpu::gemm::{GemmParams, Operands};
    use crate::rng::Rng;
    use crate::verify::{abs, compare, dot_bound, uniform, wide};
    let mut out = Vec::new();
    let mut rng = Rng::new(11, 0);
    for node in model.nodes() {
        let crate::model::Op::Linear { inp, out: o } = node.op else { continue };
        let l = node.layer;
        let (mut x, mut w) = (uniform(&mut rng, batch * inp, 1.0), uniform(&mut rng, o * inp, 1.0));
        // Mixed precision's products read X and W in f16: the references take the same values.
        let (fwd_operands, bwd_operands) = match precision {
            Precision::F32 => (Operands::F32, Operands::F32),
            Precision::Mixed => {
                gpu.kernels.half()?;
                (x, w) = (ops::cast_f16(&x), ops::cast_f16(&w));
                (Operands::F16, Operands::F32F16)
            }
        };
        let dz = uniform(&mut rng, batch * o, 1.0);
        let zeros_b = vec![0.0f64; o];
        // (name, product, a, b, reference, magnitude, k)
        let mut cases = Vec::new();
        let (mut r, mut m) = (vec![0.0; batch * o], vec![0.0; batch * o]);
        ops::fc_forward(&wide(&x), &wide(&w), &zeros_b, &mut r, batch, inp, o, false);
        ops::fc_forward(&abs(&x), &abs(&w), &zeros_b, &mut m, batch, inp, o, false);
        let mut fwd = GemmParams::fc_forward(batch, inp, o, 0, 0, false);
        fwd.params.flags = 0;
        let wt = transposed(&w, o, inp);
        if batch <= crate::gpu::gemm::SMALL_BATCH {
            let mut on_w = GemmParams::fc_forward_w(batch, inp, o, 0, 0, false);
            on_w.params.flags = 0;
            cases.push((
                "fc_forward on W",
                on_w.with_operands(fwd_operands),
                x.clone(),
                w.clone(),
                r.clone(),
                m.clone(),
                inp,
            ));
        }
        let fwd = fwd.with_operands(fwd_operands);
        if fwd.transposes_a() {
            let t = fwd.a_transposed();
            cases.push(("fc_forward from Xᵀ", t, transposed(&x, batch, inp), wt.clone(), r.clone(), m.clone(), inp));
        }
        cases.push(("fc_forward", fwd, x.clone(), wt, r, m, inp));
        let (mut r, mut m) = (vec![0.0; o * inp], vec![0.0; o * inp]);
        ops::fc_backward_weights(&wide(&dz), &wide(&x), &mut r, batch, inp, o, false);
        ops::fc_backward_weights(&abs(&dz), &abs(&x), &mut m, batch, inp, o, false);
        cases.push((
            "fc_backward_weights",
            GemmParams::fc_backward_weights(batch, inp, o, 0, false).with_operands(bwd_operands),
            dz.clone(),
            x.clone(),
            r,
            m,
            batch,
        ));
        let (mut r, mut m) = (vec![0.0; batch * inp], vec![0.0; batch * inp]);
        ops::fc_backward_input(&wide(&dz), &wide(&w), None, &mut r, batch, inp, o);
        ops::fc_backward_input(&abs(&dz), &abs(&w), None, &mut m, batch, inp, o);
        let input = GemmParams::fc_backward_input(batch, inp, o, 0, false).with_operands(bwd_operands);
        if input.transposes_a() {
            let t = input.a_transposed();
            cases.push((
                "fc_backward_input from dZᵀ",
                t,
                transposed(&dz, batch, o),
                w.clone(),
                r.clone(),
                m.clone(),
                o,
            ));
        }
        cases.push(("fc_backward_input", input, dz.clone(), w.clone(), r, m, o));
        for (name, g, a, b, reference, mag, k) in cases {
            for (variant, kernel, groups) in g.variants(&gpu.kernels) {
                let (c, secs) = crate::gpu::ops::time_gemm(
                    gpu,
                    kernel,
                    groups,
                    &g,
                    &a,
                    &b,
                    &[0.0],
                    &vec![0.0; reference.len()],
                    reps,
                )?;
                let o = compare(name, String::new(), &wide(&c), &reference, &dot_bound(&mag, k));
                let flops = 2.0 * f64::from(g.params.m) * f64::from(g.params.n) * f64::from(g.params.k);
                out.push(GemmTiming {
                    product: format!("layer {l} {name}"),
                    variant: variant.into(),
                    operands: format!("{:?}", g.operands),
                    m: g.params.m,
                    n: g.params.n,
                    k: g.params.k,
                    gflops: flops / secs / 1e9,
                    ms: secs * 1e3,
                    error_ratio: o.worst_ratio,
                });
            }
        }
    }
    Ok(out)
}

/// `a: [rows, cols]` transposed.
fn transposed(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    crate::cpu::ops::transpose(a, &mut t, rows, cols);
    t
}

/// A device `wgtrain bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDevice {
    Cpu,
    Gpu,
}

/// The workloads `names` asks for: `sweep` (small at several batch sizes) or names of
/// [`workloads`].
pub fn select(names: &[String]) -> Result<Vec<Workload>> {
    let all = workloads(true);
    let mut chosen = Vec::new();
    for name in names {
        let found: Vec<_> = match name.as_str() {
            "sweep" => all.iter().filter(|w| w.name.starts_with("small-")).cloned().collect(),
            n => all.iter().filter(|w| w.name == n).cloned().collect(),
        };
        if found.is_empty() {
            let names: Vec<_> = all.iter().map(|w| w.name.as_str()).collect();
            return Err(Error::invalid("--workloads", name, format!("sweep or one of {}", names.join(", "))));
        }
        chosen.extend(found);
    }
    Ok(chosen)
}

/// Times workload `w` (its input and output widths taken from `data`) on the CPU, or on
/// `gpu` with the data resident or streamed as `mode` says, plus a per-kernel profile.
#[allow(clippy::too_many_arguments)]
pub fn run(
    gpu: Option<&Gpu>,
    w: &Workload,
    data: &Dataset,
    mode: DataMode,
    precision: Precision,
    warmup: usize,
    steps: usize,
) -> Result<Measurement> {
    let model = w.model(data)?;
    let params = model.init(1);
    let (dev, mut m) = match gpu {
        None => {
            let mut e = CpuEngine::new(&model, params, OptimKind::Sgd, w.batch);
            ("cpu", measure(&mut e, data, w, warmup, steps)?)
        }
        Some(g) => {
            let mut e = GpuEngine::new(g, &model, &params, OptimKind::Sgd, w.batch, data, mode, precision)?;
            let mut m = measure(&mut e, data, w, warmup, steps)?;
            profile(&mut e, data, w, &mut m)?;
            (if precision == Precision::Mixed { "gpu (mixed precision)" } else { "gpu" }, m)
        }
    };
    m.device = format!("{dev}: {}", m.device);
    Ok(m)
}

/// A measurement as two table lines: throughput, then the wall-time split per step.
pub fn row(m: &Measurement) -> String {
    let dev = m.device.split(':').next().unwrap_or_default();
    let mem = m.memory_bytes.map_or(String::new(), |b| format!("  {:.1} MiB on device", b as f64 / 1048576.0));
    format!(
        "{:<12} {:<5} batch {:>5}: {:>9.0} samples/s {:>8.2} ms/step {:>7.2} GFLOP/s  first step {:>6.0} ms{mem}\n\
         {:<12}       per step: host gather {:.3} ms (overlapped), record+submit {:.3} ms, final wait {:.3} ms",
        m.workload,
        dev,
        m.batch,
        m.samples_per_s,
        m.ms_per_step,
        m.gflops,
        m.first_step_ms,
        "",
        m.host_gather_ms,
        m.submit_ms,
        m.wait_ms
    )
}

/// The per-kernel GPU time of each GPU measurement, or a note where the adapter has no
/// timestamp queries.
pub fn profiles(results: &[Measurement]) -> String {
    let mut s = String::new();
    for m in results.iter().filter(|m| m.device.starts_with("gpu")) {
        match &m.kernels {
            None => {
                s +=
                    &format!("\n{}: this adapter has no timestamp queries; see the wall-time split above\n", m.workload)
            }
            Some(k) => {
                let total: f64 = k.iter().map(|(_, t)| t).sum();
                s += &format!("\nper-kernel GPU time, {} (one step, {:.2} ms in kernels):\n", m.workload, total);
                for (name, t) in k {
                    s += &format!("  {name:<34} {t:>8.3} ms {:>5.1}%\n", 100.0 * t / total);
                }
            }
        }
    }
    s
}

/// A [`GemmTiming`] of workload `workload` as one table line.
pub fn gemm_row(workload: &str, t: &GemmTiming) -> String {
    format!(
        "{:<8} {:<28} {:<6} {:<11} M={:<5} N={:<5} K={:<5} {:>7.2} GFLOP/s {:>8.3} ms  error/bound {:.2}",
        workload, t.product, t.operands, t.variant, t.m, t.n, t.k, t.gflops, t.ms, t.error_ratio
    )
}

/// One convolution kernel of the `cnn` preset's shapes, timed; or one product of the
/// im2col path (`gpu::conv_im2col`, every dispatch it records), or the forward's matrix
/// product alone on host-built patches.
#[derive(Clone, Debug, Serialize)]
pub struct ConvTiming {
    pub shape: String,
    pub kernel: String,
    pub gflops: f64,
    pub ms: f64,
}

/// Times the four convolution kernels on the `cnn` preset's two convolutions (batch 128:
/// 1→32 on 28×28 and 32→64 on 14×14, k 3, pad 1), the best of `reps` runs each, next to
/// the im2col path's three products (each with its patches, layout changes and col2im)
/// and every GEMM variant on the `[B·H·W, C_in·k²] × [C_in·k², C_out]` product im2col would
/// run. FLOPs count the convolution as the GEMM it is (`2·B·H_out·W_out·C_out·C_in·k²`;
/// none for the bias gradient).
pub fn conv_kernels(gpu: &Gpu, reps: usize) -> Result<Vec<ConvTiming>> {
    use crate::cpu::conv::Conv2dShape;
    let mut out = Vec::new();
    for s in [Conv2dShape::new(128, 1, 28, 28, 32, 3, 1, 1)?, Conv2dShape::new(128, 32, 14, 14, 64, 3, 1, 1)?] {
        let (rows, r) = (s.batch * s.h_out * s.w_out, s.c_in * s.k * s.k);
        let flops = 2.0 * (rows * r * s.c_out) as f64;
        let mut push = |kernel: String, secs: f64, counted: bool| {
            let gflops = if counted { flops / secs / 1e9 } else { f64::NAN };
            out.push(ConvTiming { shape: s.to_string(), kernel, gflops, ms: secs * 1e3 });
        };
        let t = crate::gpu::conv_ops::time_conv2d(gpu, &s, reps)?;
        let names = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weights", "conv2d_backward_bias"];
        for (i, (name, secs)) in names.iter().zip(t).enumerate() {
            push(name.to_string(), secs, i < 3);
        }
        let t = crate::gpu::conv_ops::time_conv2d_im2col(gpu, &s, reps)?;
        let names = ["im2col forward (patches+GEMM+NCHW)", "im2col backward_input (GEMM+col2im)"];
        push(names[0].to_string(), t[0], true);
        push("im2col backward_weights (rows+GEMM)".to_string(), t[1], true);
        push(names[1].to_string(), t[2], true);
        let g = crate::gpu::gemm::GemmParams::fc_forward(rows, r, s.c_out, 0, 0, false);
        let mut rng = crate::rng::Rng::new(9, 49);
        let a = crate::verify::uniform(&mut rng, rows * r, 1.0);
        let b = crate::verify::uniform(&mut rng, r * s.c_out, 1.0);
        let (bias, c0) = (vec![0.0f32; s.c_out], vec![0.0; rows * s.c_out]);
        for (name, kernel, groups) in g.variants(&gpu.kernels) {
            let time = || crate::gpu::ops::time_gemm(gpu, kernel, groups, &g, &a, &b, &bias, &c0, 1);
            let secs = (0..reps).map(|_| time().map(|t| t.1)).collect::<Result<Vec<f64>>>()?;
            push(format!("im2col GEMM only ({name})"), secs.iter().copied().fold(f64::INFINITY, f64::min), true);
        }
    }
    Ok(out)
}

/// A [`ConvTiming`] as one table line.
pub fn conv_row(t: &ConvTiming) -> String {
    let gf = if t.gflops.is_nan() { String::from("       -") } else { format!("{:>8.2}", t.gflops) };
    format!("{:<44} {:<34} {:>8.2} ms {gf} GFLOP/s", t.shape, t.kernel, t.ms)
}
