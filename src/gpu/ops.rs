//! One-shot GPU runs of each kernel on host data: upload, one dispatch, read back.
//! Same names and arguments as the CPU twins in `cpu::ops`; used by `wgtrain verify`
//! and the parity tests. (Training never uses these: it records its step once, see
//! [`super::net`].)

use crate::error::Result;
use crate::gpu::buffers::{read, storage, storage_init, uniform};
use crate::gpu::gemm::*;
use crate::gpu::kernels::*;
use crate::gpu::pipeline::*;
use crate::gpu::Gpu;
use crate::optim::OptimStep;

/// Records `dispatches` in one pass and submits them (also for `conv_ops`).
pub(super) fn run(gpu: &Gpu, dispatches: &[Dispatch]) {
    let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("op") });
    {
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("op"), timestamp_writes: None });
        record(&mut pass, dispatches);
    }
    gpu.queue.submit([enc.finish()]);
}

/// A 16-byte buffer for a binding the kernel does not read.
pub(super) fn dummy(gpu: &Gpu) -> Result<wgpu::Buffer> {
    storage(gpu, "unused", 16)
}

/// GPU `fc_forward`: `Z = X·Wᵀ + b` (ReLU). `x: [B, IN]`, `w: [OUT, IN]`, `b: [OUT]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_forward(
    gpu: &Gpu,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    batch: usize,
    inp: usize,
    out: usize,
    relu: bool,
) -> Result<Vec<f32>> {
    let params = storage_init(gpu, "params", &[w, b].concat())?;
    let xb = storage_init(gpu, "x", x)?;
    let z = storage(gpu, "z", (batch * out * 4) as u64)?;
    let d = dummy(gpu)?;
    // As in training: a batch of at most SMALL_BATCH rows reads W itself; a larger one
    // transposes W, then the product reads Wᵀ.
    if batch <= SMALL_BATCH {
        let g = GemmParams::fc_forward_w(batch, inp, out, 0, out * inp, relu);
        let u = uniform(gpu, "gemm", &g.params);
        run(gpu, &[g.dispatch(gpu, &u, [&xb, &params, &params, &d, &z])]);
        return read(gpu, &z, batch * out);
    }
    let wt = storage(gpu, "transposed weights", (out * inp * 4) as u64)?;
    let t = TransposeParams { rows: out as u32, cols: inp as u32, src_off: 0, dst_off: 0 };
    let g = GemmParams::fc_forward(batch, inp, out, 0, out * inp, relu);
    let u = uniform(gpu, "gemm", &g.params);
    run(gpu, &[t.dispatch(gpu, None, &params, &wt), g.dispatch(gpu, &u, [&xb, &wt, &params, &d, &z])]);
    read(gpu, &z, batch * out)
}

/// GPU `transpose`: `Wᵀ` of `w: [rows, cols]`.
pub fn transpose(gpu: &Gpu, w: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
    read(gpu, &transposed(gpu, None, w, rows, cols)?, w.len())
}

/// The transpose of `w: [rows, cols]` ([`TransposeParams::kernel`]'s: the f16 one where
/// `half` is given), run once.
fn transposed(gpu: &Gpu, half: Option<&Half>, w: &[f32], rows: usize, cols: usize) -> Result<wgpu::Buffer> {
    let src = storage_init(gpu, "w", w)?;
    let bytes = if half.is_some() { 2 } else { 4 };
    let dst = storage(gpu, "wt", (w.len() * bytes) as u64)?;
    let t = TransposeParams { rows: rows as u32, cols: cols as u32, src_off: 0, dst_off: 0 };
    run(gpu, &[t.dispatch(gpu, half, &src, &dst)]);
    Ok(dst)
}

/// GPU `fc_backward_weights`: `dW = dZᵀ·X`, added to `dw` when `accumulate`. Returns
/// the new `dw`.
#[allow(clippy::too_many_arguments)]
pub fn fc_backward_weights(
    gpu: &Gpu,
    dz: &[f32],
    x: &[f32],
    dw: &[f32],
    batch: usize,
    inp: usize,
    out: usize,
    accumulate: bool,
) -> Result<Vec<f32>> {
    let grads = storage_init(gpu, "grads", dw)?;
    let dzb = storage_init(gpu, "dz", dz)?;
    let xb = storage_init(gpu, "x", x)?;
    let g = GemmParams::fc_backward_weights(batch, inp, out, 0, accumulate);
    let u = uniform(gpu, "gemm", &g.params);
    let d = dummy(gpu)?;
    run(gpu, &[g.dispatch(gpu, &u, [&dzb, &xb, &d, &d, &grads])]);
    read(gpu, &grads, out * inp)
}

/// GPU `fc_backward_bias`: `db = Σ_rows dZ`, added to `db` when `accumulate`. Returns
/// the new `db`. (`db` sits after a dummy `dW` in the gradient buffer, at an offset as in
/// training.)
pub fn fc_backward_bias(
    gpu: &Gpu,
    dz: &[f32],
    db: &[f32],
    batch: usize,
    out: usize,
    accumulate: bool,
) -> Result<Vec<f32>> {
    let db_off = 3;
    let grads = storage_init(gpu, "grads", &[&[0.0; 3][..], db].concat())?;
    let dzb = storage_init(gpu, "dz", dz)?;
    let p = BiasGradParams {
        batch: batch as u32,
        out: out as u32,
        db_off: db_off as u32,
        accumulate: u32::from(accumulate),
    };
    let u = uniform(gpu, "fc_backward_bias", &p);
    run(gpu, &[gpu.kernels.fc_backward_bias.dispatch(&gpu.device, &[&u, &dzb, &grads], linear_groups(out, 64))]);
    let mut all = read(gpu, &grads, db_off + out)?;
    Ok(all.split_off(db_off))
}

/// GPU `fc_backward_input`: `dX = dZ·W`, optionally `⊙ [a_prev > 0]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_backward_input(
    gpu: &Gpu,
    dz: &[f32],
    w: &[f32],
    a_prev: Option<&[f32]>,
    batch: usize,
    inp: usize,
    out: usize,
) -> Result<Vec<f32>> {
    let dzb = storage_init(gpu, "dz", dz)?;
    let wb = storage_init(gpu, "w", w)?;
    let mask = match a_prev {
        Some(a) => storage_init(gpu, "a_prev", a)?,
        None => dummy(gpu)?,
    };
    let dx = storage(gpu, "dx", (batch * inp * 4) as u64)?;
    let g = GemmParams::fc_backward_input(batch, inp, out, 0, a_prev.is_some());
    let u = uniform(gpu, "gemm", &g.params);
    let d = dummy(gpu)?;
    run(gpu, &[g.dispatch(gpu, &u, [&dzb, &wb, &d, &mask, &dx])]);
    read(gpu, &dx, batch * inp)
}

/// GPU `relu_forward`: `a = max(z, 0)`.
pub fn relu_forward(gpu: &Gpu, z: &[f32]) -> Result<Vec<f32>> {
    elementwise(gpu, &gpu.kernels.on_demand()?.relu_forward, z, z)
}

/// GPU `relu_backward`: `dz = da ⊙ [z > 0]`.
pub fn relu_backward(gpu: &Gpu, da: &[f32], z: &[f32]) -> Result<Vec<f32>> {
    elementwise(gpu, &gpu.kernels.on_demand()?.relu_backward, z, da)
}

fn elementwise(gpu: &Gpu, k: &Kernel, z: &[f32], da: &[f32]) -> Result<Vec<f32>> {
    let zb = storage_init(gpu, "z", z)?;
    let dab = storage_init(gpu, "da", da)?;
    let out = storage(gpu, "out", (z.len() * 4) as u64)?;
    let u = uniform(gpu, "len", &LenParams { len: z.len() as u32, _pad: [0; 3] });
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &zb, &dab, &out], linear_groups(z.len(), LINEAR_WG as usize))]);
    read(gpu, &out, z.len())
}

/// GPU `softmax`: row softmax of `z: [B, C]`.
pub fn softmax(gpu: &Gpu, z: &[f32], batch: usize, classes: usize) -> Result<Vec<f32>> {
    let (_, _, p) = softmax_run(gpu, &gpu.kernels.on_demand()?.softmax, z, &vec![0; batch], 1.0, batch, classes)?;
    Ok(p)
}

/// GPU `softmax_xent`: per-sample loss, correct flag, and `dz = (p − onehot)·scale`.
pub fn softmax_xent(
    gpu: &Gpu,
    z: &[f32],
    labels: &[u32],
    scale: f32,
    batch: usize,
    classes: usize,
) -> Result<(Vec<f32>, Vec<u32>, Vec<f32>)> {
    softmax_run(gpu, &gpu.kernels.softmax_xent, z, labels, scale, batch, classes)
}

fn softmax_run(
    gpu: &Gpu,
    k: &Kernel,
    z: &[f32],
    labels: &[u32],
    scale: f32,
    batch: usize,
    classes: usize,
) -> Result<(Vec<f32>, Vec<u32>, Vec<f32>)> {
    let zb = storage_init(gpu, "z", z)?;
    let yb = storage_init(gpu, "labels", labels)?;
    let loss = storage(gpu, "loss", (batch * 4) as u64)?;
    let correct = storage(gpu, "correct", (batch * 4) as u64)?;
    let out = storage(gpu, "out", (batch * classes * 4) as u64)?;
    let u = uniform(gpu, "softmax", &SoftmaxParams { batch: batch as u32, classes: classes as u32, scale, _pad: 0 });
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &zb, &yb, &loss, &correct, &out], linear_groups(batch, 64))]);
    Ok((read(gpu, &loss, batch)?, read(gpu, &correct, batch)?, read(gpu, &out, batch * classes)?))
}

/// GPU `accumulate_stats` on a zeroed metrics block: `(Σ loss, Σ correct)` and the block.
pub fn accumulate_stats(gpu: &Gpu, loss: &[f32], correct: &[u32]) -> Result<Stats> {
    let lb = storage_init(gpu, "loss", loss)?;
    let cb = storage_init(gpu, "correct", correct)?;
    let stats = storage(gpu, "stats", std::mem::size_of::<Stats>() as u64)?;
    let u = uniform(gpu, "stats", &StatsParams { batch: loss.len() as u32, first_chunk: 1, _pad: [0; 2] });
    run(gpu, &[gpu.kernels.accumulate_stats.dispatch(&gpu.device, &[&u, &lb, &cb, &stats], [1, 1, 1])]);
    Ok(read::<Stats>(gpu, &stats, 1)?[0])
}

/// GPU `optimizer_update`; returns the new `(w, s1, s2)`. `step_bad` simulates the
/// non-finite guard (a raised flag must leave everything unchanged).
pub fn optimizer_update(
    gpu: &Gpu,
    w: &[f32],
    g: &[f32],
    s1: &[f32],
    s2: &[f32],
    st: &OptimStep,
    step_bad: bool,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let wb = storage_init(gpu, "w", w)?;
    let gb = storage_init(gpu, "g", g)?;
    let s1b = storage_init(gpu, "s1", s1)?;
    let s2b = storage_init(gpu, "s2", s2)?;
    let stats = storage_init(gpu, "stats", &[Stats { step_bad: u32::from(step_bad), ..Default::default() }])?;
    let u = uniform(gpu, "optim", &OptimParams::new(w.len(), st));
    let kernel = gpu.kernels.optimizer_update(st.kind);
    let groups = linear_groups(w.len().div_ceil(4), LINEAR_WG as usize);
    run(gpu, &[kernel.dispatch(&gpu.device, &[&u, &gb, &stats, &wb, &s1b, &s2b], groups)]);
    Ok((read(gpu, &wb, w.len())?, read(gpu, &s1b, s1.len())?, read(gpu, &s2b, s2.len())?))
}

/// GPU `fc_sgd_step`: `gemm_tn_row_sgd` on `params = [W, b]` (`W: [OUT, IN]` with
/// `IN ≡ 0 (mod 4)`, as the fused steps need) for `dz: [B, OUT]`, `x: [B, IN]` and the step
/// `st` (SGD), of at most [`SMALL_BATCH`] rows; returns the new `params`. `step_bad`
/// simulates the flag of a non-finite loss (nothing changes).
#[allow(clippy::too_many_arguments)]
pub fn fc_sgd_step(
    gpu: &Gpu,
    dz: &[f32],
    x: &[f32],
    params: &[f32],
    batch: usize,
    inp: usize,
    out: usize,
    st: &OptimStep,
    step_bad: bool,
) -> Result<Vec<f32>> {
    let g = GemmParams::fc_sgd_step(batch, inp, out, 0, out * inp);
    if !g.tn_row() {
        let needs = format!("a batch of at most {SMALL_BATCH} rows and IN ≡ 0 (mod 4)");
        return Err(crate::error::Error::shape("gpu::ops::fc_sgd_step", needs, format!("B={batch} IN={inp}")));
    }
    let pb = storage_init(gpu, "params", params)?;
    let dzb = storage_init(gpu, "dz", dz)?;
    let xb = storage_init(gpu, "x", x)?;
    let stats = storage_init(gpu, "stats", &[Stats { step_bad: u32::from(step_bad), ..Default::default() }])?;
    let ou = uniform(gpu, "optim", &OptimParams::new(params.len(), st));
    let gu = uniform(gpu, "gemm", &g.params);
    let (_, groups) = g.kernel(&gpu.kernels);
    run(gpu, &[gpu.kernels.gemm_tn_row_sgd.dispatch(&gpu.device, &[&gu, &dzb, &xb, &ou, &stats, &pb], groups)]);
    read(gpu, &pb, params.len())
}

/// GPU `gather_u8`: rows `idx` of the byte table `src: [N, D]` as f32 in [0, 1], and labels
/// (entry `gather_u8` when `D ≡ 0 (mod 4)`, else `gather_u8_unaligned`, as in training).
pub fn gather_u8(gpu: &Gpu, src: &[u8], labels: &[u32], idx: &[u32], width: usize) -> Result<(Vec<f32>, Vec<u32>)> {
    let packed = crate::gpu::net::pack_bytes(src);
    gather(gpu, true, &storage_init(gpu, "src", &packed)?, labels, idx, width)
}

/// GPU `gather_f32`: rows `idx` of `src: [N, D]`, and labels.
pub fn gather_f32(gpu: &Gpu, src: &[f32], labels: &[u32], idx: &[u32], width: usize) -> Result<(Vec<f32>, Vec<u32>)> {
    gather(gpu, false, &storage_init(gpu, "src", src)?, labels, idx, width)
}

fn gather(
    gpu: &Gpu,
    bytes: bool,
    src: &wgpu::Buffer,
    labels: &[u32],
    idx: &[u32],
    width: usize,
) -> Result<(Vec<f32>, Vec<u32>)> {
    let batch = idx.len();
    let lb = storage_init(gpu, "labels", labels)?;
    let ib = storage_init(gpu, "idx", idx)?;
    let x = storage(gpu, "x", (batch * width * 4) as u64)?;
    let y = storage(gpu, "y", (batch * 4) as u64)?;
    let p = GatherParams { batch: batch as u32, width: width as u32, _pad: [0; 2] };
    let u = uniform(gpu, "gather", &p);
    let (k, groups) = p.kernel(&gpu.kernels, bytes);
    run(gpu, &[k.dispatch(&gpu.device, &[&u, src, &lb, &ib, &x, &y], groups)]);
    Ok((read(gpu, &x, batch * width)?, read(gpu, &y, batch)?))
}

/// A product's operand on the device: `v` in f32, or in f16 when `half` (each value
/// rounded as `cpu::ops::cast_f16` does).
fn operand(gpu: &Gpu, label: &str, v: &[f32], half: bool) -> Result<wgpu::Buffer> {
    if !half {
        return storage_init(gpu, label, v);
    }
    let bits: Vec<u16> = crate::cpu::ops::cast_f16(v).iter().map(|&x| half::f16::from_f32(x).to_bits()).collect();
    storage_init(gpu, label, &bits)
}

/// GPU `transpose` built with an f16 destination (mixed precision's `Wᵀ`): `wᵀ` in f16,
/// widened back to f32 on the host.
pub fn transpose_f16(gpu: &Gpu, w: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>> {
    let dst = transposed(gpu, Some(gpu.kernels.half()?), w, rows, cols)?;
    widen(read(gpu, &dst, w.len())?)
}

/// f16 bits read back, as f32 values.
fn widen(bits: Vec<u16>) -> Result<Vec<f32>> {
    Ok(bits.into_iter().map(|b| half::f16::from_bits(b).to_f32()).collect())
}

/// GPU `cast_f16`: the f16 copy of `src`, widened back to f32 on the host.
pub fn cast_f16(gpu: &Gpu, src: &[f32]) -> Result<Vec<f32>> {
    let kh = gpu.kernels.half()?;
    let s = storage_init(gpu, "src", src)?;
    let dst = storage(gpu, "dst", (src.len() * 2) as u64)?;
    run(gpu, &[kh.cast(gpu, &s, &dst, src.len())]);
    widen(read(gpu, &dst, src.len())?)
}

/// Times `reps` runs of one matrix-product kernel on host operands `a`, `b` (in f16 where
/// [`Gemm::operands`] says), bias and mask taken from `extra`, and `C` starting as `c0`,
/// all recorded in one pass, after one untimed run. Returns the first run's `C` and the
/// seconds per run (0 runs: 0 s).
#[allow(clippy::too_many_arguments)]
pub fn time_gemm(
    gpu: &Gpu,
    kernel: &Kernel,
    groups: [u32; 3],
    g: &Gemm,
    a: &[f32],
    b: &[f32],
    extra: &[f32],
    c0: &[f32],
    reps: usize,
) -> Result<(Vec<f32>, f64)> {
    let (a16, b16) = g.operands.f16();
    let ab = operand(gpu, "a", a, a16)?;
    let bb = operand(gpu, "b", b, b16)?;
    let eb = storage_init(gpu, "bias/mask", extra)?;
    let c = storage_init(gpu, "c", c0)?;
    let c_len = c0.len();
    let u = uniform(gpu, "gemm", &g.params);
    let d = kernel.dispatch(&gpu.device, &[&u, &ab, &bb, &eb, &eb, &c], groups);
    run(gpu, std::slice::from_ref(&d));
    let first = read(gpu, &c, c_len)?;
    let t = std::time::Instant::now();
    run(gpu, &vec![d; reps]);
    gpu.wait()?;
    Ok((first, t.elapsed().as_secs_f64() / reps.max(1) as f64))
}
