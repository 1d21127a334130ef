//! One-shot GPU runs of the convolution, max-pooling and dropout kernels on host data:
//! upload, one dispatch, read back. Same names and arguments as the CPU twins in
//! `cpu::conv` and `cpu::dropout` (as [`super::ops`] is to `cpu::ops`); used by
//! `wgtrain verify` and the parity tests. [`conv2d_im2col`] runs a convolution's whole
//! im2col path ([`Im2col`]) as the training step records it.

use crate::cpu::conv::{Conv2dShape, Pool2dShape};
use crate::error::{Error, Result};
use crate::gpu::buffers::{read, storage, storage_init, uniform};
use crate::gpu::conv_im2col::Im2col;
use crate::gpu::conv_kernels::*;
use crate::gpu::ops::{dummy, run};
use crate::gpu::pipeline::*;
use crate::gpu::Gpu;

/// Fails unless `data` holds exactly `len` values.
fn check_len<T>(what: &str, data: &[T], len: usize) -> Result<()> {
    if data.len() != len {
        return Err(Error::shape("conv_ops", format!("{len} values for {what}"), data.len()));
    }
    Ok(())
}

/// GPU `conv2d_forward`: `z = b + conv(x, w)` (ReLU). `x: [B, C_in, H, W]`,
/// `w: [C_out, C_in, k, k]`, `b: [C_out]`; returns `z: [B, C_out, H_out, W_out]`.
pub fn conv2d_forward(gpu: &Gpu, x: &[f32], w: &[f32], b: &[f32], s: &Conv2dShape, relu: bool) -> Result<Vec<f32>> {
    check_len("conv2d_forward x", x, s.batch * s.in_len())?;
    check_len("conv2d_forward w", w, s.weight_len())?;
    check_len("conv2d_forward b", b, s.c_out)?;
    let xb = storage_init(gpu, "x", x)?;
    let wb = storage_init(gpu, "w", w)?;
    let bb = storage_init(gpu, "b", b)?;
    let len = s.batch * s.out_len();
    let z = storage(gpu, "z", (len * 4) as u64)?;
    let p = ConvParams::new(s, if relu { ConvParams::RELU } else { 0 }, 0, 0);
    let u = uniform(gpu, "conv2d", &p);
    let k = &gpu.kernels.on_demand()?.conv.conv2d_forward;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &xb, &wb, &bb, &z], p.groups().forward)]);
    read(gpu, &z, len)
}

/// GPU `conv2d_backward_input`: `dx = convᵀ(dz, w)`, optionally `⊙ [a_prev > 0]`.
/// `dz: [B, C_out, H_out, W_out]`, `w: [C_out, C_in, k, k]`, `a_prev: [B, C_in, H, W]`.
pub fn conv2d_backward_input(
    gpu: &Gpu,
    dz: &[f32],
    w: &[f32],
    a_prev: Option<&[f32]>,
    s: &Conv2dShape,
) -> Result<Vec<f32>> {
    check_len("conv2d_backward_input dz", dz, s.batch * s.out_len())?;
    check_len("conv2d_backward_input w", w, s.weight_len())?;
    let len = s.batch * s.in_len();
    let dzb = storage_init(gpu, "dz", dz)?;
    let wb = storage_init(gpu, "w", w)?;
    let mask = match a_prev {
        Some(a) => {
            check_len("conv2d_backward_input a_prev", a, len)?;
            storage_init(gpu, "a_prev", a)?
        }
        None => dummy(gpu)?,
    };
    let dx = storage(gpu, "dx", (len * 4) as u64)?;
    let p = ConvParams::new(s, if a_prev.is_some() { ConvParams::MASK } else { 0 }, 0, 0);
    let u = uniform(gpu, "conv2d", &p);
    let k = &gpu.kernels.on_demand()?.conv.conv2d_backward_input;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &dzb, &wb, &mask, &dx], p.groups().backward_input)]);
    read(gpu, &dx, len)
}

/// GPU `conv2d_backward_weights`: `dw = Σ_{n,oh,ow} dz·x-patch`, added to `dw` when
/// `accumulate`; returns the new `dw: [C_out, C_in, k, k]`.
pub fn conv2d_backward_weights(
    gpu: &Gpu,
    dz: &[f32],
    x: &[f32],
    dw: &[f32],
    s: &Conv2dShape,
    accumulate: bool,
) -> Result<Vec<f32>> {
    check_len("conv2d_backward_weights dz", dz, s.batch * s.out_len())?;
    check_len("conv2d_backward_weights x", x, s.batch * s.in_len())?;
    check_len("conv2d_backward_weights dw", dw, s.weight_len())?;
    let dzb = storage_init(gpu, "dz", dz)?;
    let xb = storage_init(gpu, "x", x)?;
    let dwb = storage_init(gpu, "dw", dw)?;
    let d = dummy(gpu)?;
    let p = ConvParams::new(s, if accumulate { ConvParams::ACCUMULATE } else { 0 }, 0, 0);
    let u = uniform(gpu, "conv2d", &p);
    let k = &gpu.kernels.on_demand()?.conv.conv2d_backward_weights;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &dzb, &xb, &d, &dwb], p.groups().backward_weights)]);
    read(gpu, &dwb, s.weight_len())
}

/// GPU `conv2d_backward_bias`: `db = Σ_{n,oh,ow} dz`, added to `db` when `accumulate`;
/// returns the new `db: [C_out]`.
pub fn conv2d_backward_bias(gpu: &Gpu, dz: &[f32], db: &[f32], s: &Conv2dShape, accumulate: bool) -> Result<Vec<f32>> {
    check_len("conv2d_backward_bias dz", dz, s.batch * s.out_len())?;
    check_len("conv2d_backward_bias db", db, s.c_out)?;
    let dzb = storage_init(gpu, "dz", dz)?;
    let dbb = storage_init(gpu, "db", db)?;
    let d = dummy(gpu)?;
    let p = ConvParams::new(s, if accumulate { ConvParams::ACCUMULATE } else { 0 }, 0, 0);
    let u = uniform(gpu, "conv2d", &p);
    let k = &gpu.kernels.on_demand()?.conv.conv2d_backward_bias;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &dzb, &d, &d, &dbb], p.groups().backward_bias)]);
    read(gpu, &dbb, s.c_out)
}

/// One dispatch of a `conv_im2col.wgsl` kernel over `len` outputs, reading `src` (and
/// `a_prev` as the mask when given), read back.
fn im2col_run(
    gpu: &Gpu,
    k: &Kernel,
    src: &[f32],
    a_prev: Option<&[f32]>,
    s: &Conv2dShape,
    len: usize,
) -> Result<Vec<f32>> {
    let sb = storage_init(gpu, "src", src)?;
    let mask = match a_prev {
        Some(a) => storage_init(gpu, "a_prev", a)?,
        None => dummy(gpu)?,
    };
    let out = storage(gpu, "out", (len * 4) as u64)?;
    let u = uniform(gpu, k.name, &ConvParams::new(s, if a_prev.is_some() { ConvParams::MASK } else { 0 }, 0, 0));
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &sb, &mask, &out], linear_groups(len, LINEAR_WG as usize))]);
    read(gpu, &out, len)
}

/// GPU `conv_im2col`: `x: [B, C_in, H, W]` → `cols: [B·H_out·W_out, C_in·k·k]`.
pub fn conv_im2col(gpu: &Gpu, x: &[f32], s: &Conv2dShape) -> Result<Vec<f32>> {
    check_len("conv_im2col x", x, s.batch * s.in_len())?;
    let len = s.batch * s.h_out * s.w_out * s.c_in * s.k * s.k;
    im2col_run(gpu, &gpu.kernels.on_demand()?.conv.conv_im2col, x, None, s, len)
}

/// GPU `conv_col2im`: `dcols: [B·H_out·W_out, C_in·k·k]` → `dx: [B, C_in, H, W]`,
/// optionally `⊙ [a_prev > 0]`.
pub fn conv_col2im(gpu: &Gpu, dcols: &[f32], a_prev: Option<&[f32]>, s: &Conv2dShape) -> Result<Vec<f32>> {
    check_len("conv_col2im dcols", dcols, s.batch * s.h_out * s.w_out * s.c_in * s.k * s.k)?;
    let len = s.batch * s.in_len();
    if let Some(a) = a_prev {
        check_len("conv_col2im a_prev", a, len)?;
    }
    im2col_run(gpu, &gpu.kernels.on_demand()?.conv.conv_col2im, dcols, a_prev, s, len)
}

/// GPU `conv_rows_to_nchw`: `rows: [B·H_out·W_out, C_out]` → `z: [B, C_out, H_out, W_out]`.
pub fn conv_rows_to_nchw(gpu: &Gpu, rows: &[f32], s: &Conv2dShape) -> Result<Vec<f32>> {
    check_len("conv_rows_to_nchw rows", rows, s.batch * s.out_len())?;
    im2col_run(gpu, &gpu.kernels.on_demand()?.conv.conv_rows_to_nchw, rows, None, s, rows.len())
}

/// GPU `conv_nchw_to_rows`: `z: [B, C_out, H_out, W_out]` → `rows: [B·H_out·W_out, C_out]`.
pub fn conv_nchw_to_rows(gpu: &Gpu, z: &[f32], s: &Conv2dShape) -> Result<Vec<f32>> {
    check_len("conv_nchw_to_rows z", z, s.batch * s.out_len())?;
    im2col_run(gpu, &gpu.kernels.on_demand()?.conv.conv_nchw_to_rows, z, None, s, z.len())
}

/// The buffers of one convolution's im2col path on host data (weights and bias at offset
/// 0 of `params`, `Wᵀ` at 0 of `wt`).
struct Im2colBuffers {
    path: Im2col,
    x: wgpu::Buffer,
    params: wgpu::Buffer,
    wt: wgpu::Buffer,
    cols: wgpu::Buffer,
    rows: wgpu::Buffer,
    z: wgpu::Buffer,
    dz: wgpu::Buffer,
    grads: wgpu::Buffer,
    dx: wgpu::Buffer,
    unused: wgpu::Buffer,
}

impl Im2colBuffers {
    /// `params` is `w` then `b` (`b_off` rounded up to 4), `grads` starts as `dw0`.
    fn new(gpu: &Gpu, x: &[f32], w: &[f32], b: &[f32], dz: &[f32], dw0: &[f32], s: &Conv2dShape) -> Result<Self> {
        let b_off = w.len().next_multiple_of(4);
        let mut flat = w.to_vec();
        flat.resize(b_off, 0.0);
        flat.extend_from_slice(b);
        let path = Im2col { s: *s, w_off: 0, b_off, wt_off: 0 };
        Ok(Im2colBuffers {
            path,
            x: storage_init(gpu, "x", x)?,
            params: storage_init(gpu, "w and b", &flat)?,
            wt: storage(gpu, "wt", (w.len() * 4) as u64)?,
            cols: storage(gpu, "cols", (path.cols_len() * 4) as u64)?,
            rows: storage(gpu, "rows", (path.out_rows_len() * 4) as u64)?,
            z: storage(gpu, "z", (s.batch * s.out_len() * 4) as u64)?,
            dz: storage_init(gpu, "dz", dz)?,
            grads: storage_init(gpu, "dw", dw0)?,
            dx: storage(gpu, "dx", (s.batch * s.in_len() * 4) as u64)?,
            unused: dummy(gpu)?,
        })
    }
}

/// The im2col path of one convolution ([`Im2col`]) as the training step records it:
/// forward `z = conv(x, w) + b` (ReLU), then from `dz` the weight gradient `dw` (added to
/// `dw0` when `accumulate`) and the input gradient `dx` (⊙ `[a_prev > 0]` when given).
/// Returns `(z, dw, dx)`; to hold the path to `cpu::conv`'s `conv2d_*`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_im2col(
    gpu: &Gpu,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dz: &[f32],
    dw0: &[f32],
    a_prev: Option<&[f32]>,
    s: &Conv2dShape,
    relu: bool,
    accumulate: bool,
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    check_len("conv2d_im2col x", x, s.batch * s.in_len())?;
    check_len("conv2d_im2col w", w, s.weight_len())?;
    check_len("conv2d_im2col b", b, s.c_out)?;
    check_len("conv2d_im2col dz", dz, s.batch * s.out_len())?;
    check_len("conv2d_im2col dw0", dw0, s.weight_len())?;
    let m = Im2colBuffers::new(gpu, x, w, b, dz, dw0, s)?;
    let mask = match a_prev {
        Some(a) => {
            check_len("conv2d_im2col a_prev", a, s.batch * s.in_len())?;
            Some(storage_init(gpu, "a_prev", a)?)
        }
        None => None,
    };
    let p = &m.path;
    let mut d = p.forward(gpu, &m.x, &m.params, &m.wt, &m.cols, &m.rows, &m.z, relu, &m.unused, None)?;
    d.extend(p.backward_weights(gpu, &m.dz, &m.cols, &m.rows, &m.grads, accumulate, &m.unused, None)?);
    d.extend(p.backward_input(gpu, &m.rows, &m.params, &m.cols, mask.as_ref(), &m.dx, &m.unused, None)?);
    run(gpu, &d);
    Ok((
        read(gpu, &m.z, s.batch * s.out_len())?,
        read(gpu, &m.grads, s.weight_len())?,
        read(gpu, &m.dx, s.batch * s.in_len())?,
    ))
}

/// Seconds per run of the im2col path's three products on random data of shape `s`
/// (forward: patches, `Wᵀ`, GEMM, to NCHW; weight gradient: `dZ` to rows, GEMM; input
/// gradient: GEMM, col2im), the best of `reps` timed runs of each after an untimed one,
/// as [`time_conv2d`] times the implicit kernels.
pub fn time_conv2d_im2col(gpu: &Gpu, s: &Conv2dShape, reps: usize) -> Result<[f64; 3]> {
    let mut rng = crate::rng::Rng::new(1, 61);
    let mut data = |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect() };
    let (x, w, b, dz) = (data(s.batch * s.in_len()), data(s.weight_len()), data(s.c_out), data(s.batch * s.out_len()));
    let m = Im2colBuffers::new(gpu, &x, &w, &b, &dz, &vec![0.0; s.weight_len()], s)?;
    let p = &m.path;
    let products = [
        p.forward(gpu, &m.x, &m.params, &m.wt, &m.cols, &m.rows, &m.z, false, &m.unused, None)?,
        p.backward_weights(gpu, &m.dz, &m.cols, &m.rows, &m.grads, false, &m.unused, None)?,
        p.backward_input(gpu, &m.rows, &m.params, &m.cols, None, &m.dx, &m.unused, None)?,
    ];
    let mut out = [0.0; 3];
    for (d, t) in products.iter().zip(&mut out) {
        run(gpu, d);
        gpu.wait()?;
        *t = f64::INFINITY;
        for _ in 0..reps {
            let start = std::time::Instant::now();
            run(gpu, d);
            gpu.wait()?;
            *t = t.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(out)
}

/// GPU `maxpool2d_forward`: returns `(y, argmax)`, both `[B, C, H_out, W_out]`.
pub fn maxpool2d_forward(gpu: &Gpu, x: &[f32], s: &Pool2dShape) -> Result<(Vec<f32>, Vec<u32>)> {
    check_len("maxpool2d_forward x", x, s.batch * s.in_len())?;
    let len = s.batch * s.out_len();
    let xb = storage_init(gpu, "x", x)?;
    let y = storage(gpu, "y", (len * 4) as u64)?;
    let arg = storage(gpu, "argmax", (len * 4) as u64)?;
    let u = uniform(gpu, "maxpool2d", &PoolParams::new(s));
    let k = &gpu.kernels.on_demand()?.conv.maxpool2d_forward;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &xb, &arg, &y], linear_groups(len, 64))]);
    Ok((read(gpu, &y, len)?, read(gpu, &arg, len)?))
}

/// GPU `maxpool2d_backward`: `dy` routed to the `argmax` inputs, zero elsewhere; returns
/// `dx: [B, C, H, W]`.
pub fn maxpool2d_backward(gpu: &Gpu, dy: &[f32], argmax: &[u32], s: &Pool2dShape) -> Result<Vec<f32>> {
    check_len("maxpool2d_backward dy", dy, s.batch * s.out_len())?;
    check_len("maxpool2d_backward argmax", argmax, s.batch * s.out_len())?;
    let len = s.batch * s.in_len();
    let dyb = storage_init(gpu, "dy", dy)?;
    let arg = storage_init(gpu, "argmax", argmax)?;
    let dx = storage(gpu, "dx", (len * 4) as u64)?;
    let u = uniform(gpu, "maxpool2d", &PoolParams::new(s));
    let k = &gpu.kernels.on_demand()?.conv.maxpool2d_backward;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &dyb, &arg, &dx], linear_groups(len, 64))]);
    read(gpu, &dx, len)
}

#[allow(clippy::too_many_arguments)]
fn dropout_run(
    gpu: &Gpu,
    k: &Kernel,
    x: &[f32],
    samples: &[u32],
    width: usize,
    seed: u64,
    epoch: u32,
    p: f32,
) -> Result<Vec<u32>> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid("dropout", p, "a probability in [0, 1)"));
    }
    let len = samples.len() * width;
    let xb = if x.is_empty() { dummy(gpu)? } else { storage_init(gpu, "x", x)? };
    let sb = storage_init(gpu, "samples", samples)?;
    let out = storage(gpu, "out", (len * 4) as u64)?;
    let u = uniform(gpu, "dropout", &DropoutParams::new(samples.len(), width, seed, epoch, p));
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &xb, &sb, &out], linear_groups(len, 256))]);
    read(gpu, &out, len)
}

fn floats(bits: Vec<u32>) -> Vec<f32> {
    bits.into_iter().map(f32::from_bits).collect()
}

/// GPU `dropout_forward`: `y = x ⊙ mask / (1 − p)`, masks keyed by (seed, epoch,
/// `samples[n]`, element). `x: [B, width]`, `samples: [B]`.
pub fn dropout_forward(
    gpu: &Gpu,
    x: &[f32],
    samples: &[u32],
    width: usize,
    seed: u64,
    epoch: u32,
    p: f32,
) -> Result<Vec<f32>> {
    check_len("dropout_forward x", x, samples.len() * width)?;
    Ok(floats(dropout_run(gpu, &gpu.kernels.on_demand()?.conv.dropout_forward, x, samples, width, seed, epoch, p)?))
}

/// GPU `dropout_backward`: `dx = dy ⊙ mask / (1 − p)` with the forward's mask.
pub fn dropout_backward(
    gpu: &Gpu,
    dy: &[f32],
    samples: &[u32],
    width: usize,
    seed: u64,
    epoch: u32,
    p: f32,
) -> Result<Vec<f32>> {
    check_len("dropout_backward dy", dy, samples.len() * width)?;
    Ok(floats(dropout_run(gpu, &gpu.kernels.on_demand()?.conv.dropout_backward, dy, samples, width, seed, epoch, p)?))
}

/// The WGSL `dropout_hash(seed, epoch, samples[n], j)` for every `n`, `j < width`
/// (row-major), to hold it to `rng::dropout_hash`.
pub fn dropout_hash_bits(gpu: &Gpu, samples: &[u32], width: usize, seed: u64, epoch: u32) -> Result<Vec<u32>> {
    dropout_run(gpu, &gpu.kernels.on_demand()?.conv.dropout_hash_bits, &[], samples, width, seed, epoch, 0.0)
}

/// GPU `augment`: rows `x: [B, C·H·W]` of dataset samples `samples: [B]` flipped and
/// shifted as `a` draws them for (`seed`, `epoch`); `shape` is `(C, H, W)`.
pub fn augment(
    gpu: &Gpu,
    x: &[f32],
    samples: &[u32],
    shape: (usize, usize, usize),
    seed: u64,
    epoch: u32,
    a: &crate::data::augment::Augment,
) -> Result<Vec<f32>> {
    let len = samples.len() * shape.0 * shape.1 * shape.2;
    check_len("augment x", x, len)?;
    let xb = storage_init(gpu, "x", x)?;
    let sb = storage_init(gpu, "samples", samples)?;
    let out = storage(gpu, "out", (len * 4) as u64)?;
    let u = uniform(gpu, "augment", &AugmentParams::new(samples.len(), shape, seed, epoch, a));
    let k = &gpu.kernels.on_demand()?.conv.augment;
    run(gpu, &[k.dispatch(&gpu.device, &[&u, &xb, &sb, &out], linear_groups(len, 256))]);
    read(gpu, &out, len)
}

/// Seconds per run of each of the four convolution kernels (forward, backward input,
/// backward weights, backward bias) on random data of shape `s`: the best of `reps`
/// timed runs of each, after one untimed run (for `conv2d.wgsl`'s header figures).
pub fn time_conv2d(gpu: &Gpu, s: &Conv2dShape, reps: usize) -> Result<[f64; 4]> {
    let mut rng = crate::rng::Rng::new(1, 60);
    let mut data = |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect() };
    let x = storage_init(gpu, "x", &data(s.batch * s.in_len()))?;
    let w = storage_init(gpu, "w", &data(s.weight_len()))?;
    let b = storage_init(gpu, "b", &data(s.c_out))?;
    let dz = storage_init(gpu, "dz", &data(s.batch * s.out_len()))?;
    let z = storage(gpu, "z", (s.batch * s.out_len() * 4) as u64)?;
    let dx = storage(gpu, "dx", (s.batch * s.in_len() * 4) as u64)?;
    let dw = storage(gpu, "dw", (s.weight_len() * 4) as u64)?;
    let db = storage(gpu, "db", (s.c_out * 4) as u64)?;
    let p = ConvParams::new(s, 0, 0, 0);
    let u = uniform(gpu, "conv2d", &p);
    let (k, g) = (&gpu.kernels.on_demand()?.conv, p.groups());
    let dispatches = [
        k.conv2d_forward.dispatch(&gpu.device, &[&u, &x, &w, &b, &z], g.forward),
        k.conv2d_backward_input.dispatch(&gpu.device, &[&u, &dz, &w, &b, &dx], g.backward_input),
        k.conv2d_backward_weights.dispatch(&gpu.device, &[&u, &dz, &x, &b, &dw], g.backward_weights),
        k.conv2d_backward_bias.dispatch(&gpu.device, &[&u, &dz, &x, &b, &db], g.backward_bias),
    ];
    let mut out = [0.0; 4];
    for (d, t) in dispatches.iter().zip(&mut out) {
        run(gpu, std::slice::from_ref(d));
        gpu.wait()?;
        *t = f64::INFINITY;
        for _ in 0..reps {
            let start = std::time::Instant::now();
            run(gpu, std::slice::from_ref(d));
            gpu.wait()?;
            *t = t.min(start.elapsed().as_secs_f64());
        }
    }
    Ok(out)
}
