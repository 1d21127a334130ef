//! Holding the GPU to the CPU: each op run on both over a set of shapes, compared
//! element by element against a bound that scales with the values' magnitude. Shared by
//! `wgtrain verify` and the parity tests, so both check exactly the same thing. Each
//! case is named after its op, as the CPU twin and the GPU runner are (the op table is
//! in [`crate::gpu::kernels`]).
//!
//! The reference is the CPU twin run in `f64` on the same `f32` inputs, so it is close to
//! exact and every difference is the GPU's rounding. Bounds, with `ε = f32::EPSILON`
//! (`2⁻²³`, twice the unit roundoff):
//! - a sum of `K` products (the matrix products): `|gpu − ref| ≤ (K + 2)·ε·Σ|terms|`, the
//!   classical bound `γ_K·Σ|aᵢbᵢ|` with a factor 2 to spare. `Σ|terms|` is the same twin
//!   run on `|A|`, `|B|`. A dropped bias, scale or mask moves a value by about its own
//!   size, far outside this bound.
//! - ReLU, the input gather: exact (they only select, copy or multiply once by a constant).
//! - softmax and cross-entropy: `exp`/`log` cost a few ulp, and rounding `z − max` costs
//!   `ε·|z − max|` in the exponent; the bounds add those terms, scaled by the probability.
//! - optimizer updates: a few roundings of `w` and of the step (see [`optimizer_update`]).
//! - convolution: sums of products as above, `K = C_in·k·k` (forward), at most
//!   `C_out·k·k` (input gradient), `B·H_out·W_out` (weight and bias gradients).
//! - max-pooling, dropout: exact (a selection; one correctly rounded product by an `f32`
//!   scale both sides share, which the `f64` twin rounded to `f32` reproduces).

pub mod conv;

use crate::cpu::{net, ops};
use crate::error::{Error, Result};
use crate::gpu::{ops as gops, Gpu};
use crate::model::Model;
use crate::optim::{OptimKind, Optimizer};
use crate::rng::Rng;

/// Layer widths the parity suite covers: ragged (1, 3, 17, 129), round (100) and real (784).
pub const WIDTHS: [usize; 6] = [1, 3, 17, 100, 129, 784];
/// Batch sizes the parity suite covers.
pub const BATCHES: [usize; 4] = [1, 7, 128, 257];

const EPS: f64 = f32::EPSILON as f64;
/// Probabilities below f32's smallest normal number may flush to zero.
const TINY: f64 = f32::MIN_POSITIVE as f64;

/// One comparison's result.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub op: String,
    pub shape: String,
    /// Largest `|gpu − ref|`.
    pub max_err: f64,
    /// Largest `|gpu − ref| / bound` (≤ 1 passes).
    pub worst_ratio: f64,
    pub pass: bool,
    /// The worst few elements: `(index, gpu, reference, bound)`.
    pub worst: Vec<(usize, f64, f64, f64)>,
}

impl Outcome {
    /// A multi-line account for a failing test.
    pub fn report(&self) -> String {
        let mut s = format!(
            "{} {}: max |gpu − ref| = {:.3e}, worst error/bound = {:.3} ({})\n",
            self.op,
            self.shape,
            self.max_err,
            self.worst_ratio,
            if self.pass { "pass" } else { "FAIL" }
        );
        for (i, g, r, t) in &self.worst {
            s += &format!("  [{i}] gpu {g:.9e}  ref {r:.9e}  |diff| {:.3e}  bound {t:.3e}\n", (g - r).abs());
        }
        s
    }
}

/// Compares `gpu` to `reference` element by element against `bound`.
pub fn compare(op: &str, shape: String, gpu: &[f64], reference: &[f64], bound: &[f64]) -> Outcome {
    assert_eq!(gpu.len(), reference.len(), "{op} {shape}: lengths differ");
    let mut rows: Vec<(usize, f64, f64, f64, f64)> = gpu
        .iter()
        .zip(reference)
        .zip(bound)
        .enumerate()
        .map(|(i, ((&g, &r), &t))| {
            let d = (g - r).abs();
            // A NaN difference fails; an exact match passes even with a zero bound.
            let ratio = if d == 0.0 {
                0.0
            } else if d.is_nan() {
                f64::INFINITY
            } else {
                d / t
            };
            (i, g, r, t, ratio)
        })
        .collect();
    let max_err = rows.iter().map(|r| (r.1 - r.2).abs()).fold(0.0, f64::max);
    rows.sort_by(|a, b| b.4.total_cmp(&a.4));
    let worst_ratio = rows.first().map_or(0.0, |r| r.4);
    Outcome {
        op: op.into(),
        shape,
        max_err,
        worst_ratio,
        pass: worst_ratio <= 1.0,
        worst: rows.iter().take(4).map(|r| (r.0, r.1, r.2, r.3)).collect(),
    }
}

/// Uniform values in `[-s, s)`, seeded.
pub fn uniform(rng: &mut Rng, n: usize, s: f64) -> Vec<f32> {
    (0..n).map(|_| ((rng.uniform() * 2.0 - 1.0) * s) as f32).collect()
}

/// `v` in `f64`.
pub(crate) fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `|v|` in `f64`: the operands whose product bounds a sum's rounding (see [`dot_bound`]).
pub(crate) fn abs(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x).abs()).collect()
}

/// A bound of `(k + 2)·ε·mag` for sums of `k` products whose absolute terms sum to `mag`.
pub(crate) fn dot_bound(mag: &[f64], k: usize) -> Vec<f64> {
    mag.iter().map(|m| (k as f64 + 2.0) * EPS * m).collect()
}

/// `fc_forward` on random `x: [B, IN]`, `w: [OUT, IN]`, `b: [OUT]`.
pub fn fc_forward(gpu: &Gpu, batch: usize, inp: usize, out: usize, relu: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 1);
    let x = uniform(&mut rng, batch * inp, 1.0);
    let w = uniform(&mut rng, out * inp, 1.0);
    let b = uniform(&mut rng, out, 1.0);
    let g = gops::fc_forward(gpu, &x, &w, &b, batch, inp, out, relu)?;
    let mut r = vec![0.0; batch * out];
    ops::fc_forward(&wide(&x), &wide(&w), &wide(&b), &mut r, batch, inp, out, relu);
    let mut mag = vec![0.0; batch * out];
    ops::fc_forward(&abs(&x), &abs(&w), &abs(&b), &mut mag, batch, inp, out, false);
    let shape = format!("B={batch} IN={inp} OUT={out}{}", if relu { " relu" } else { "" });
    Ok(compare("fc_forward", shape, &wide(&g), &r, &dot_bound(&mag, inp)))
}

/// `transpose` of a random `[rows, cols]` matrix (exact).
pub fn transpose(gpu: &Gpu, rows: usize, cols: usize, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 12);
    let w = uniform(&mut rng, rows * cols, 1.0);
    let g = gops::transpose(gpu, &w, rows, cols)?;
    let mut r = vec![0.0; rows * cols];
    ops::transpose(&wide(&w), &mut r, rows, cols);
    Ok(compare("transpose", format!("{rows}x{cols}"), &wide(&g), &r, &vec![0.0; rows * cols]))
}

/// `cast_f16` of `len` values spread over f16's range (magnitudes 2⁻²⁴ to 2¹⁵), after a
/// few chosen ones: zeros, a tie, past the largest finite f16 (saturating), below the
/// smallest subnormal, NaN and infinities. Exact where the value is an f16 or saturates;
/// otherwise within one f16 step of the twin's (WGSL lets the adapter round to either
/// neighbour); non-finite (an infinity or NaN) where the value is.
pub fn cast_f16(gpu: &Gpu, len: usize, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 13);
    let mut x: Vec<f32> =
        uniform(&mut rng, len, 1.0).iter().enumerate().map(|(i, v)| v * 2f32.powi(i as i32 % 40 - 24)).collect();
    let chosen = [
        0.0,
        -0.0,
        1.0 + 2f32.powi(-11),
        65504.0,
        65520.0,
        -1e6,
        2f32.powi(-26),
        3e-6,
        1.0 / 3.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for (v, c) in x.iter_mut().zip(chosen) {
        *v = c;
    }
    let g = gops::cast_f16(gpu, &x)?;
    Ok(compare_f16("cast_f16", format!("{len}"), &x, g, ops::cast_f16(&x)))
}

/// `transpose` with an f16 destination (mixed precision's `Wᵀ`) of a random
/// `[rows, cols]` matrix: the transpose of the twin's cast, within [`compare_f16`]'s bounds.
pub fn transpose_f16(gpu: &Gpu, rows: usize, cols: usize, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 14);
    let w = uniform(&mut rng, rows * cols, 3.0);
    let g = gops::transpose_f16(gpu, &w, rows, cols)?;
    let (mut wt, mut r) = (vec![0.0; rows * cols], vec![0.0; rows * cols]);
    ops::transpose(&w, &mut wt, rows, cols);
    ops::transpose_f16(&w, &mut r, rows, cols);
    Ok(compare_f16("transpose_f16", format!("{rows}x{cols}"), &wt, g, r))
}

/// Compares the GPU's f16 conversions `g` of `x` with the twin's `r` (`cpu::ops::cast_f16`):
/// exact where the value is an f16 (at least 2⁻¹⁴) or saturates, within one f16 step of
/// the twin's value otherwise (WGSL lets the adapter round to either neighbour; below
/// 2⁻¹⁴ the value itself, as an adapter may flush f16 subnormals), and non-finite where
/// the value is.
fn compare_f16(op: &str, shape: String, x: &[f32], mut g: Vec<f32>, mut r: Vec<f32>) -> Outcome {
    // Non-finite on both sides matches (compare fails any NaN difference): count it as 0 = 0.
    for (g, r) in g.iter_mut().zip(&mut r) {
        if !g.is_finite() && !r.is_finite() {
            (*g, *r) = (0.0, 0.0);
        }
    }
    // One f16 step at the twin's value: 2^(e − 10) for a normal one.
    let step = |v: f32| {
        let normal = f64::from(v.abs().max(2f32.powi(-14))).log2().floor().exp2() / 1024.0;
        if v.abs() < 2f32.powi(-14) {
            f64::from(v.abs()).max(normal)
        } else {
            normal
        }
    };
    let saturated = |v: f32| v.abs() >= 65504.0 || !v.is_finite();
    let exact = |v: f32, t: f32| (v == t && t.abs() >= 2f32.powi(-14)) || saturated(v);
    let bound: Vec<f64> = x.iter().zip(&r).map(|(&v, &t)| if exact(v, t) { 0.0 } else { step(t) }).collect();
    compare(op, shape, &wide(&g), &wide(&r), &bound)
}

/// `fc_backward_weights` on random `dz`, `x` (and prior gradients when `accumulate`).
pub fn fc_backward_weights(
    gpu: &Gpu,
    batch: usize,
    inp: usize,
    out: usize,
    accumulate: bool,
    seed: u64,
) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 2);
    let dz = uniform(&mut rng, batch * out, 1.0);
    let x = uniform(&mut rng, batch * inp, 1.0);
    let dw0 = uniform(&mut rng, out * inp, 1.0);
    let g = gops::fc_backward_weights(gpu, &dz, &x, &dw0, batch, inp, out, accumulate)?;
    let mut r = wide(&dw0);
    ops::fc_backward_weights(&wide(&dz), &wide(&x), &mut r, batch, inp, out, accumulate);
    let mut mag = abs(&dw0);
    ops::fc_backward_weights(&abs(&dz), &abs(&x), &mut mag, batch, inp, out, accumulate);
    let shape = format!("B={batch} IN={inp} OUT={out}{}", if accumulate { " accumulate" } else { "" });
    Ok(compare("fc_backward_weights", shape, &wide(&g), &r, &dot_bound(&mag, batch)))
}

/// `fc_backward_bias` on a random `dz` (and prior gradients when `accumulate`).
pub fn fc_backward_bias(gpu: &Gpu, batch: usize, out: usize, accumulate: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 13);
    let dz = uniform(&mut rng, batch * out, 1.0);
    let db0 = uniform(&mut rng, out, 1.0);
    let g = gops::fc_backward_bias(gpu, &dz, &db0, batch, out, accumulate)?;
    let mut r = wide(&db0);
    ops::fc_backward_bias(&wide(&dz), &mut r, batch, out, accumulate);
    let mut mag = abs(&db0);
    ops::fc_backward_bias(&abs(&dz), &mut mag, batch, out, accumulate);
    let shape = format!("B={batch} OUT={out}{}", if accumulate { " accumulate" } else { "" });
    Ok(compare("fc_backward_bias", shape, &wide(&g), &r, &dot_bound(&mag, batch)))
}

/// `fc_backward_input` on random `dz`, `w` (and a ReLU mask from a random `a_prev`, about
/// half of it zero, when `mask`).
pub fn fc_backward_input(gpu: &Gpu, batch: usize, inp: usize, out: usize, mask: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 3);
    let dz = uniform(&mut rng, batch * out, 1.0);
    let w = uniform(&mut rng, out * inp, 1.0);
    let a: Vec<f32> = uniform(&mut rng, batch * inp, 1.0).iter().map(|v| v.max(0.0)).collect();
    let a_prev = mask.then_some(&a[..]);
    let g = gops::fc_backward_input(gpu, &dz, &w, a_prev, batch, inp, out)?;
    let mut r = vec![0.0; batch * inp];
    let a64 = wide(&a);
    ops::fc_backward_input(&wide(&dz), &wide(&w), mask.then_some(&a64[..]), &mut r, batch, inp, out);
    let mut mag = vec![0.0; batch * inp];
    ops::fc_backward_input(&abs(&dz), &abs(&w), None, &mut mag, batch, inp, out);
    let shape = format!("B={batch} IN={inp} OUT={out}{}", if mask { " mask" } else { "" });
    Ok(compare("fc_backward_input", shape, &wide(&g), &r, &dot_bound(&mag, out)))
}

/// `relu_forward` on `len` random values (exact).
pub fn relu_forward(gpu: &Gpu, len: usize, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 4);
    let z = uniform(&mut rng, len, 1.0);
    let mut a = vec![0.0; len];
    ops::relu_forward(&wide(&z), &mut a);
    let g = gops::relu_forward(gpu, &z)?;
    Ok(compare("relu_forward", format!("len={len}"), &wide(&g), &a, &vec![0.0; len]))
}

/// `relu_backward` on `len` random values (exact).
pub fn relu_backward(gpu: &Gpu, len: usize, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 4);
    let z = uniform(&mut rng, len, 1.0);
    let da = uniform(&mut rng, len, 1.0);
    let mut dz = vec![0.0; len];
    ops::relu_backward(&wide(&da), &wide(&z), &mut dz);
    let g = gops::relu_backward(gpu, &da, &z)?;
    Ok(compare("relu_backward", format!("len={len}"), &wide(&g), &dz, &vec![0.0; len]))
}

/// Per row: `max_c |z_c − max z|`, the size of the exponents softmax rounds.
fn spreads(z: &[f32], batch: usize, classes: usize) -> Vec<f64> {
    (0..batch)
        .map(|n| {
            let r = &z[n * classes..(n + 1) * classes];
            let m = r.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            r.iter().map(|&v| f64::from(m - v)).fold(0.0, f64::max)
        })
        .collect()
}

/// `softmax` on logits uniform in `[-scale, scale)`.
pub fn softmax(gpu: &Gpu, batch: usize, classes: usize, scale: f64, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 5);
    let z = uniform(&mut rng, batch * classes, scale);
    let g = gops::softmax(gpu, &z, batch, classes)?;
    let mut r = vec![0.0; batch * classes];
    ops::softmax(&wide(&z), &mut r, batch, classes);
    let spread = spreads(&z, batch, classes);
    let bound: Vec<f64> =
        r.iter().enumerate().map(|(i, p)| (classes as f64 + 8.0 + spread[i / classes]) * EPS * p + TINY).collect();
    Ok(compare("softmax", format!("B={batch} C={classes} |z|<{scale}"), &wide(&g), &r, &bound))
}

/// `softmax_xent` on logits uniform in `[-scale, scale)`: the loss, correct and `dz`
/// comparisons.
pub fn softmax_xent(gpu: &Gpu, batch: usize, classes: usize, scale: f64, seed: u64) -> Result<[Outcome; 3]> {
    let mut rng = Rng::new(seed, 6);
    let z = uniform(&mut rng, batch * classes, scale);
    let y: Vec<u32> = (0..batch).map(|_| rng.below(classes as u64) as u32).collect();
    let s = 1.0 / batch as f32;
    let (gl, gc, gdz) = gops::softmax_xent(gpu, &z, &y, s, batch, classes)?;
    let (mut rl, mut rc, mut rdz) = (vec![0.0; batch], vec![0; batch], vec![0.0; batch * classes]);
    ops::softmax_xent(&wide(&z), &y, f64::from(s), &mut rl, &mut rc, &mut rdz, batch, classes);
    let mut p = vec![0.0; batch * classes];
    ops::softmax(&wide(&z), &mut p, batch, classes);
    let spread = spreads(&z, batch, classes);
    let c = classes as f64;
    let lbound: Vec<f64> = rl.iter().zip(&spread).map(|(l, r)| EPS * (c + 8.0 + 2.0 * r + 4.0 * l.abs())).collect();
    let dbound: Vec<f64> = p
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (r, l) = (spread[i / classes], rl[i / classes]);
            f64::from(s) * EPS * ((c + 8.0 + 3.0 * r + 2.0 * l.abs()) * p + 1.0)
        })
        .collect();
    let shape = format!("B={batch} C={classes} |z|<{scale}");
    let as_f = |v: &[u32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    Ok([
        compare("softmax_xent loss", shape.clone(), &wide(&gl), &rl, &lbound),
        compare("softmax_xent correct", shape.clone(), &as_f(&gc), &as_f(&rc), &vec![0.0; batch]),
        compare("softmax_xent dz", shape, &wide(&gdz), &rdz, &dbound),
    ])
}

/// `accumulate_stats` on `batch` random losses and correct flags.
pub fn accumulate_stats(gpu: &Gpu, batch: usize, seed: u64) -> Result<[Outcome; 2]> {
    let mut rng = Rng::new(seed, 7);
    let loss: Vec<f32> = uniform(&mut rng, batch, 3.0).iter().map(|v| v.abs()).collect();
    let correct: Vec<u32> = (0..batch).map(|_| rng.below(2) as u32).collect();
    let g = gops::accumulate_stats(gpu, &loss, &correct)?;
    let (rs, rc) = ops::accumulate_stats(&wide(&loss), &correct);
    let shape = format!("B={batch}");
    Ok([
        compare(
            "accumulate_stats loss",
            shape.clone(),
            &[f64::from(g.loss_sum)],
            &[rs],
            &[(batch as f64 + 2.0) * EPS * rs],
        ),
        compare("accumulate_stats correct", shape, &[f64::from(g.correct)], &[f64::from(rc)], &[0.0]),
    ])
}

/// Three steps of `optimizer_update` on `len` random parameters and gradients. Each step
/// starts both devices from the GPU's `f32` state, so every comparison is one update's
/// rounding: `w` within `2ε|w_old| + 16ε(|Δw| + the step's size before cancellation)`,
/// each state within `4ε·Σ|its terms|`.
pub fn optimizer_update(gpu: &Gpu, kind: OptimKind, len: usize, seed: u64) -> Result<Vec<Outcome>> {
    let mut rng = Rng::new(seed, 8);
    let mut opt = Optimizer::new(kind, 0.01);
    opt.weight_decay = 0.05;
    let wd = f64::from(opt.weight_decay);
    let mut w = uniform(&mut rng, len, 1.0);
    let (mut s1, mut s2) = (vec![0.0f32; len], vec![0.0f32; len]);
    let name = format!("optimizer_update {}", kind.name());
    let mut out: Vec<Outcome> = Vec::new();
    for t in 1..=3 {
        let g = uniform(&mut rng, len, 1.0);
        let st = opt.step(t, opt.lr);
        let (gw, g1, g2) = gops::optimizer_update(gpu, &w, &g, &s1, &s2, &st, false)?;
        let (mut rw, mut r1, mut r2) = (wide(&w), wide(&s1), wide(&s2));
        ops::optimizer_update(&mut rw, &wide(&g), &mut r1, &mut r2, &st);
        let terms = |i: usize| f64::from(g[i]).abs() + wd * f64::from(w[i]).abs();
        // The step's magnitude before any cancellation, so a bound survives `v` or `m`
        // cancelling to nearly zero.
        let (lr, mu, b1) = (f64::from(st.lr), f64::from(st.momentum), f64::from(st.beta1));
        let step_mag = |i: usize| -> f64 {
            let decay = lr * wd * f64::from(w[i]).abs();
            decay
                + match kind {
                    OptimKind::Sgd => lr * terms(i),
                    OptimKind::Momentum { .. } => lr * (1.0 + mu) * (mu * f64::from(s1[i]).abs() + terms(i)),
                    OptimKind::Adam { .. } => {
                        let denom = r2[i].sqrt() / f64::from(st.bias_correction2()).sqrt() + f64::from(st.eps);
                        lr / f64::from(st.bias_correction1()) * (b1 * f64::from(s1[i]).abs() + (1.0 - b1) * terms(i))
                            / denom
                    }
                }
        };
        let wb: Vec<f64> = (0..len)
            .map(|i| 2.0 * EPS * f64::from(w[i]).abs() + 16.0 * EPS * ((rw[i] - f64::from(w[i])).abs() + step_mag(i)))
            .collect();
        let b1: Vec<f64> = (0..len).map(|i| 4.0 * EPS * (f64::from(s1[i]).abs() + terms(i))).collect();
        let b2: Vec<f64> = (0..len).map(|i| 4.0 * EPS * (f64::from(s2[i]).abs() + terms(i).powi(2))).collect();
        let shape = format!("m={len} step {t}");
        out.push(compare(&format!("{name} w"), shape.clone(), &wide(&gw), &rw, &wb));
        if kind.state_vectors() > 0 {
            out.push(compare(&format!("{name} state 1"), shape.clone(), &wide(&g1), &r1, &b1));
        }
        if kind.state_vectors() > 1 {
            out.push(compare(&format!("{name} state 2"), shape, &wide(&g2), &r2, &b2));
        }
        (w, s1, s2) = (gw, g1, g2);
    }
    Ok(out)
}

/// `fc_sgd_step` on random `dz: [B, OUT]`, `x: [B, IN]` and `params = [W, b]`, with weight
/// decay (`IN ≡ 0 (mod 4)`, `B ≤ SMALL_BATCH`, as the fused steps need). The bound is the
/// optimizer's (see [`optimizer_update`]) plus `α` times the gradient's own rounding
/// (see [`dot_bound`]).
pub fn fc_sgd_step(gpu: &Gpu, batch: usize, inp: usize, out: usize, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 14);
    let dz = uniform(&mut rng, batch * out, 1.0);
    let x = uniform(&mut rng, batch * inp, 1.0);
    let p = uniform(&mut rng, out * inp + out, 1.0);
    let mut opt = Optimizer::new(OptimKind::Sgd, 0.01);
    opt.weight_decay = 0.05;
    let st = opt.step(1, opt.lr);
    let g = gops::fc_sgd_step(gpu, &dz, &x, &p, batch, inp, out, &st, false)?;
    let mut r = wide(&p);
    ops::fc_sgd_step(&wide(&dz), &wide(&x), &mut r, batch, inp, out, &st);
    // |dW|, |db| before cancellation, and their rounding bounds.
    let mut mag = vec![0.0; out * inp + out];
    let (mw, mb) = mag.split_at_mut(out * inp);
    ops::fc_backward_weights(&abs(&dz), &abs(&x), mw, batch, inp, out, false);
    ops::fc_backward_bias(&abs(&dz), mb, batch, out, false);
    let (lr, wd) = (f64::from(st.lr), f64::from(st.weight_decay));
    let bound: Vec<f64> = dot_bound(&mag, batch)
        .iter()
        .enumerate()
        .map(|(i, gb)| {
            let w = f64::from(p[i]).abs();
            let step = lr * wd * w + lr * (mag[i] + wd * w);
            2.0 * EPS * w + 16.0 * EPS * ((r[i] - f64::from(p[i])).abs() + step) + lr * gb
        })
        .collect();
    Ok(compare("fc_sgd_step", format!("B={batch} IN={inp} OUT={out}"), &wide(&g), &r, &bound))
}

/// A random `[rows, width]` table's labels and `batch` random row indices.
fn gather_rows(rng: &mut Rng, rows: usize, batch: usize) -> (Vec<u32>, Vec<u32>) {
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(1000) as u32).collect();
    let idx: Vec<u32> = (0..batch).map(|_| rng.below(rows as u64) as u32).collect();
    (labels, idx)
}

/// `gather_u8`: `batch` random rows of a random `[rows, width]` byte table (exact).
pub fn gather_u8(gpu: &Gpu, rows: usize, width: usize, batch: usize, seed: u64) -> Result<[Outcome; 2]> {
    let mut rng = Rng::new(seed, 9);
    let bytes: Vec<u8> = (0..rows * width).map(|_| rng.below(256) as u8).collect();
    let (labels, idx) = gather_rows(&mut rng, rows, batch);
    let (gx, gy) = gops::gather_u8(gpu, &bytes, &labels, &idx, width)?;
    let (mut rx, mut ry) = (vec![0.0f32; batch * width], vec![0; batch]);
    ops::gather_u8(&bytes, &labels, &idx, width, &mut rx, &mut ry);
    let shape = format!("N={rows} D={width} B={batch}");
    let as_f = |v: &[u32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    Ok([
        compare("gather_u8 x", shape.clone(), &wide(&gx), &wide(&rx), &vec![0.0; batch * width]),
        compare("gather_u8 y", shape, &as_f(&gy), &as_f(&ry), &vec![0.0; batch]),
    ])
}

/// `gather_f32`: `batch` random rows of a random `[rows, width]` f32 table (exact).
pub fn gather_f32(gpu: &Gpu, rows: usize, width: usize, batch: usize, seed: u64) -> Result<[Outcome; 2]> {
    let mut rng = Rng::new(seed, 14);
    let floats = uniform(&mut rng, rows * width, 10.0);
    let (labels, idx) = gather_rows(&mut rng, rows, batch);
    let (gx, gy) = gops::gather_f32(gpu, &floats, &labels, &idx, width)?;
    let (mut rx, mut ry) = (vec![0.0f32; batch * width], vec![0; batch]);
    ops::gather_f32(&floats, &labels, &idx, width, &mut rx, &mut ry);
    let shape = format!("N={rows} D={width} B={batch}");
    let as_f = |v: &[u32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    Ok([
        compare("gather_f32 x", shape.clone(), &wide(&gx), &wide(&rx), &vec![0.0; batch * width]),
        compare("gather_f32 y", shape, &as_f(&gy), &as_f(&ry), &vec![0.0; batch]),
    ])
}

/// Backprop on the CPU in `f64` against central finite differences of the mean
/// cross-entropy, for every parameter of a small network (dropout masks keyed by seed 0,
/// epoch 0 and the row index, the same in every evaluation). Bound: `1e-6·(1 + |g|)`; with
/// `h = 1e-5` the difference's truncation error is `O(h²) ≈ 1e-10` and its rounding
/// error `≈ ε₆₄/h ≈ 1e-11`, far inside it (a ReLU kink within `h` of a sample would
/// break this; the seeded data has none).
pub fn gradcheck(model: &Model, batch: usize, seed: u64) -> Result<Outcome> {
    let samples: Vec<u32> = (0..batch as u32).collect();
    let draw = net::Draw { seed: 0, epoch: 0, samples: &samples };
    let mut rng = Rng::new(seed, 10);
    let params: Vec<f64> = model.init(seed).iter().map(|&v| f64::from(v) + 0.1 * (rng.uniform() - 0.5)).collect();
    let x: Vec<f64> = (0..batch * model.inputs()).map(|_| rng.uniform() * 2.0 - 1.0).collect();
    let y: Vec<u32> = (0..batch).map(|_| rng.below(model.classes() as u64) as u32).collect();
    let mut ws = net::Workspace::new(model, batch);
    let mut grads = vec![0.0; params.len()];
    let scale = 1.0 / batch as f64;
    net::loss_and_grad(model, &params, &x, &y, batch, scale, &mut grads, false, &mut ws, net::Kernels::Reference, draw);
    let mut risk = |p: &[f64]| {
        let mut g = vec![0.0; p.len()];
        let k = net::Kernels::Reference;
        net::loss_and_grad(model, p, &x, &y, batch, scale, &mut g, false, &mut ws, k, draw).0 * scale
    };
    let h = 1e-5;
    let mut fd = vec![0.0; params.len()];
    let mut p = params.clone();
    for i in 0..params.len() {
        p[i] = params[i] + h;
        let up = risk(&p);
        p[i] = params[i] - h;
        let down = risk(&p);
        p[i] = params[i];
        fd[i] = (up - down) / (2.0 * h);
    }
    let bound: Vec<f64> = fd.iter().map(|g| 1e-6 * (1.0 + g.abs())).collect();
    let what = format!("{} B={batch} m={}", model.spec(), params.len());
    Ok(compare("gradcheck (cpu, f64)", what, &grads, &fd, &bound))
}

/// A small network with every kind of layer, for the gradient check: two convolutions
/// (the second strided), ReLU fused and stand-alone, max-pooling over an odd size,
/// dropout, and two linear layers, on 2×9×9 inputs.
pub fn small_cnn() -> Result<Model> {
    let spec = "conv:3:3:p1,relu,pool:2,relu,conv:4:3:s2:p1,relu,dropout:0.3,flatten,linear:5,relu,linear";
    crate::model::Spec::parse(spec, &[])
        .map_err(|e| Error::invalid("small_cnn", spec, e))?
        .build(crate::model::Shape::Image { c: 2, h: 9, w: 9 }, 3)
}

/// The whole suite, as `wgtrain verify` runs it; `progress` is told each op's name.
pub fn all(gpu: &Gpu, mut progress: impl FnMut(&str)) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    let mut seed = 0;
    let mut next = || {
        seed += 1;
        seed
    };
    progress("fully connected layer (forward, dW, db, dX)");
    for &b in &BATCHES {
        for &i in &WIDTHS {
            for &o in &WIDTHS {
                out.push(fc_forward(gpu, b, i, o, (b + i + o) % 2 == 0, next())?);
                out.push(fc_backward_weights(gpu, b, i, o, (b + i + o) % 2 == 1, next())?);
                out.push(fc_backward_input(gpu, b, i, o, (b + i + o) % 2 == 0, next())?);
            }
        }
        for &o in &WIDTHS {
            for accumulate in [false, true] {
                out.push(fc_backward_bias(gpu, b, o, accumulate, next())?);
            }
        }
    }
    for &r in &WIDTHS {
        for &c in &WIDTHS {
            out.push(transpose(gpu, r, c, next())?);
        }
    }
    if gpu.features.contains(wgpu::Features::SHADER_F16) {
        progress("mixed precision's f16 cast and transpose");
        for &len in &[1, 3, 17, 1000, 70_001] {
            out.push(cast_f16(gpu, len, next())?);
        }
        for &r in &WIDTHS {
            for &c in &WIDTHS {
                out.push(transpose_f16(gpu, r, c, next())?);
            }
        }
    } else {
        progress("mixed precision's f16 cast and transpose: skipped, the adapter has no SHADER_F16");
    }
    progress("element-wise, softmax, cross-entropy, metrics");
    for &len in &[1, 17, 1000, 70_001] {
        out.push(relu_forward(gpu, len, next())?);
        out.push(relu_backward(gpu, len, next())?);
    }
    for &b in &BATCHES {
        for &c in &[2usize, 3, 10, 17, 129] {
            out.push(softmax(gpu, b, c, 5.0, next())?);
            out.extend(softmax_xent(gpu, b, c, 5.0, next())?);
        }
        out.push(softmax(gpu, b, 10, 80.0, next())?);
        out.extend(softmax_xent(gpu, b, 10, 80.0, next())?);
        out.extend(accumulate_stats(gpu, b, next())?);
    }
    progress("optimizers, fused SGD steps");
    for kind in [
        OptimKind::Sgd,
        OptimKind::Momentum { nesterov: false },
        OptimKind::Momentum { nesterov: true },
        OptimKind::Adam { decoupled: false },
        OptimKind::Adam { decoupled: true },
    ] {
        for &len in &[1, 129, 100_003] {
            out.extend(optimizer_update(gpu, kind, len, next())?);
        }
    }
    for b in 1..=crate::gpu::gemm::SMALL_BATCH {
        for &(i, o) in &[(4, 1), (100, 17), (784, 129)] {
            out.push(fc_sgd_step(gpu, b, i, o, next())?);
        }
    }
    progress("input gather");
    for &(rows, width, batch) in &[(1, 1, 1), (10, 3, 7), (1000, 17, 128), (300, 784, 257)] {
        out.extend(gather_u8(gpu, rows, width, batch, next())?);
        out.extend(gather_f32(gpu, rows, width, batch, next())?);
    }
    progress("convolution, max-pooling, dropout");
    out.extend(conv::all(gpu, &mut next)?);
    progress("gradient check");
    out.push(gradcheck(&Model::from_sizes(&[5, 7, 4, 3])?, 6, 1)?);
    out.push(gradcheck(&small_cnn()?, 3, 2)?);
    Ok(out)
}

/// One row per op: how many shapes, the largest error, the worst error/bound, pass/fail.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut ops: Vec<&str> = Vec::new();
    for o in outcomes {
        if !ops.contains(&o.op.as_str()) {
            ops.push(&o.op);
        }
    }
    let mut s = format!("{:<34} {:>6} {:>12} {:>12}  {}\n", "op", "shapes", "max error", "error/bound", "result");
    for op in ops {
        let rows: Vec<&Outcome> = outcomes.iter().filter(|o| o.op == op).collect();
        let max_err = rows.iter().map(|o| o.max_err).fold(0.0, f64::max);
        let ratio = rows.iter().map(|o| o.worst_ratio).fold(0.0, f64::max);
        let failed = rows.iter().filter(|o| !o.pass).count();
        let result = if failed == 0 { "pass".to_string() } else { format!("FAIL ({failed})") };
        s += &format!("{op:<34} {:>6} {max_err:>12.3e} {ratio:>12.3e}  {result}\n", rows.len());
    }
    s
}
