//! The CPU twin of every WGSL kernel: plain loops, obviously right, generic over
//! `f32` and `f64` so the gradient check can run in `f64`.
//!
//! Each function has the name and argument order of its kernel in `shaders/`, and
//! states the shapes it expects. Layouts are row-major: a batch `x: [B, IN]` holds
//! sample `n` in `x[n*IN .. (n+1)*IN]`, a weight `w: [OUT, IN]` holds output unit `o`'s
//! incoming weights in `w[o*IN .. (o+1)*IN]`.

use crate::optim::{OptimKind, OptimStep};
use crate::Real;

/// Fully connected forward, ReLU optionally fused: `Z = X·Wᵀ + b`, then `A = max(Z, 0)`.
///
/// `x: [B, IN]`, `w: [OUT, IN]`, `b: [OUT]`, `z: [B, OUT]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_forward<T: Real>(x: &[T], w: &[T], b: &[T], z: &mut [T], batch: usize, inp: usize, out: usize, relu: bool) {
    for n in 0..batch {
        let xr = &x[n * inp..(n + 1) * inp];
        for o in 0..out {
            let wr = &w[o * inp..(o + 1) * inp];
            let mut s = T::zero();
            for i in 0..inp {
                s = s + xr[i] * wr[i];
            }
            let v = s + b[o];
            z[n * out + o] = if relu { relu_scalar(v) } else { v };
        }
    }
}

fn relu_scalar<T: Real>(v: T) -> T {
    if v > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// ReLU forward, element-wise: `a = max(z, 0)`.
pub fn relu_forward<T: Real>(z: &[T], a: &mut [T]) {
    for (a, &z) in a.iter_mut().zip(z) {
        *a = relu_scalar(z);
    }
}

/// ReLU backward (forward: `a = max(z, 0)`), element-wise: `dz = da ⊙ [z > 0]`.
pub fn relu_backward<T: Real>(da: &[T], z: &[T], dz: &mut [T]) {
    for ((dz, &da), &z) in dz.iter_mut().zip(da).zip(z) {
        *dz = if z > T::zero() { da } else { T::zero() };
    }
}

/// A fused ReLU's backward in place: `d ← d ⊙ [a > 0]`, `a` the ReLU's output (so
/// `[a > 0] = [z > 0]`; NaN compares false and is masked, as the GPU's `!(a > 0)`).
pub fn relu_mask<T: Real>(d: &mut [T], a: &[T]) {
    for (d, &a) in d.iter_mut().zip(a) {
        if a.partial_cmp(&T::zero()) != Some(std::cmp::Ordering::Greater) {
            *d = T::zero();
        }
    }
}

/// Row softmax, max-subtracted: `p[n, c] = exp(z[n,c] − m_n) / Σ_j exp(z[n,j] − m_n)`
/// with `m_n = max_j z[n,j]`. `z, p: [B, C]`.
pub fn softmax<T: Real>(z: &[T], p: &mut [T], batch: usize, classes: usize) {
    for n in 0..batch {
        let zr = &z[n * classes..(n + 1) * classes];
        let pr = &mut p[n * classes..(n + 1) * classes];
        let m = zr.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
        let mut s = T::zero();
        for c in 0..classes {
            pr[c] = (zr[c] - m).exp();
            s = s + pr[c];
        }
        for v in pr.iter_mut() {
            *v = *v / s;
        }
    }
}

/// Fused softmax + cross-entropy + its gradient, one row per sample.
///
/// `z: [B, C]` logits, `labels: [B]`. Writes
/// - `loss[n] = logsumexp(z_n) − z_n,y` (computed as `log Σ exp(z − m) − (z_y − m)`),
/// - `correct[n] = 1` when the argmax of `z_n` (ties: lowest index) equals `y_n`,
/// - `dz[n, c] = (p_n,c − [c = y_n]) · scale`, where `scale = 1/B` for the mean over a batch
///   (or `1/N` when a full-batch gradient is accumulated over chunks of `N` samples).
#[allow(clippy::too_many_arguments)]
pub fn softmax_xent<T: Real>(
    z: &[T],
    labels: &[u32],
    scale: T,
    loss: &mut [T],
    correct: &mut [u32],
    dz: &mut [T],
    batch: usize,
    classes: usize,
) {
    for n in 0..batch {
        let zr = &z[n * classes..(n + 1) * classes];
        let y = labels[n] as usize;
        let mut m = zr[0];
        let mut arg = 0;
        for (c, &v) in zr.iter().enumerate().skip(1) {
            if v > m {
                m = v;
                arg = c;
            }
        }
        let mut s = T::zero();
        for &v in zr {
            s = s + (v - m).exp();
        }
        let lse = s.ln();
        loss[n] = lse - (zr[y] - m);
        correct[n] = u32::from(arg == y);
        for c in 0..classes {
            let p = (zr[c] - m - lse).exp();
            let onehot = if c == y { T::one() } else { T::zero() };
            dz[n * classes + c] = (p - onehot) * scale;
        }
    }
}

/// Transpose of a weight matrix: `dst[i, o] = src[o, i]`, `src: [ROWS, COLS]`,
/// `dst: [COLS, ROWS]` (the forward product reads `Wᵀ` on the GPU).
pub fn transpose<T: Real>(src: &[T], dst: &mut [T], rows: usize, cols: usize) {
    for o in 0..rows {
        for i in 0..cols {
            dst[i * rows + o] = src[o * cols + i];
        }
    }
}

/// Mixed precision's cast of an operand to f16 (`--precision mixed`): each finite value
/// rounded to the nearest f16, ties to even, saturating at ±65504 (f16's largest finite
/// value), an infinity to itself and a NaN to NaN (`f16_common.wgsl` may give either
/// for either: both non-finite); returned widened to f32 (exactly).
/// `f16_common.wgsl` may round to either neighbour (WGSL leaves it to the adapter);
/// llvmpipe rounds as this does.
pub fn cast_f16(src: &[f32]) -> Vec<f32> {
    const F16_MAX: f32 = 65504.0;
    let one = |x: f32| if x.is_finite() { half::f16::from_f32(x.clamp(-F16_MAX, F16_MAX)).to_f32() } else { x };
    src.iter().map(|&x| one(x)).collect()
}

/// Mixed precision's `Wᵀ`: the transpose ([`transpose`]) of `src: [ROWS, COLS]` cast to
/// f16 ([`cast_f16`]), widened to f32.
pub fn transpose_f16(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    transpose(&cast_f16(src), dst, rows, cols);
}

/// Fully connected backward, weights (forward: `Z = X·Wᵀ + b`): `dW = dZᵀ·X`, added to
/// what is there when `accumulate`.
///
/// `dz: [B, OUT]`, `x: [B, IN]`, `dw: [OUT, IN]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_backward_weights<T: Real>(
    dz: &[T],
    x: &[T],
    dw: &mut [T],
    batch: usize,
    inp: usize,
    out: usize,
    accumulate: bool,
) {
    for o in 0..out {
        for i in 0..inp {
            let mut s = T::zero();
            for n in 0..batch {
                s = s + dz[n * out + o] * x[n * inp + i];
            }
            let prev = if accumulate { dw[o * inp + i] } else { T::zero() };
            dw[o * inp + i] = prev + s;
        }
    }
}

/// Fully connected backward, bias (forward: `Z = X·Wᵀ + b`): `db[o] = Σ_n dZ[n, o]`,
/// summed in increasing `n`, then added to what is there when `accumulate`.
///
/// `dz: [B, OUT]`, `db: [OUT]`.
pub fn fc_backward_bias<T: Real>(dz: &[T], db: &mut [T], batch: usize, out: usize, accumulate: bool) {
    for o in 0..out {
        let mut s = T::zero();
        for n in 0..batch {
            s = s + dz[n * out + o];
        }
        db[o] = if accumulate { db[o] + s } else { s };
    }
}

/// A pure-SGD step of a fully connected layer with the update fused into its backward
/// pass (the GPU's fused SGD steps of small batches): `dW = dZᵀ·X` and `db = Σ_n dZ[n]`
/// ([`fc_backward_weights`], [`fc_backward_bias`]), then [`optimizer_update`] (SGD, `st`)
/// of `params = [W, b]` with them. `dz: [B, OUT]`, `x: [B, IN]`, `params: [OUT·IN + OUT]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_sgd_step<T: Real>(dz: &[T], x: &[T], params: &mut [T], batch: usize, inp: usize, out: usize, st: &OptimStep) {
    let mut g = vec![T::zero(); out * inp + out];
    let (dw, db) = g.split_at_mut(out * inp);
    fc_backward_weights(dz, x, dw, batch, inp, out, false);
    fc_backward_bias(dz, db, batch, out, false);
    optimizer_update(params, &g, &mut [], &mut [], st);
}

/// Fully connected backward, input (forward: `Z = X·Wᵀ + b`): `dX = dZ·W`, with the
/// previous layer's ReLU mask optionally fused: `dX ⊙ [a_prev > 0]` (for `a = max(z, 0)`,
/// `a > 0` exactly when `z > 0`).
///
/// `dz: [B, OUT]`, `w: [OUT, IN]`, `a_prev: [B, IN]`, `dx: [B, IN]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_backward_input<T: Real>(
    dz: &[T],
    w: &[T],
    a_prev: Option<&[T]>,
    dx: &mut [T],
    batch: usize,
    inp: usize,
    out: usize,
) {
    for n in 0..batch {
        for i in 0..inp {
            let mut s = T::zero();
            for o in 0..out {
                s = s + dz[n * out + o] * w[o * inp + i];
            }
            let keep = a_prev.is_none_or(|a| a[n * inp + i] > T::zero());
            dx[n * inp + i] = if keep { s } else { T::zero() };
        }
    }
}

/// One optimizer update over the flat parameter vector, PyTorch's semantics.
///
/// `w, g, s1, s2: [m]`; `s1` is the momentum buffer (momentum) or the first moment (Adam),
/// `s2` the second moment (Adam). With `g' = g + λw` (coupled weight decay λ):
/// - SGD: `w ← w − α g'`
/// - momentum: `v ← μ v + g'`; `w ← w − α v` (Nesterov: `w ← w − α (g' + μ v)`)
/// - Adam: `m ← β₁m + (1−β₁)g'`; `v ← β₂v + (1−β₂)g'²`;
///   `w ← w − (α / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`
/// - AdamW: as Adam with `g' = g`, after the decoupled decay `w ← w (1 − αλ)`.
pub fn optimizer_update<T: Real>(w: &mut [T], g: &[T], s1: &mut [T], s2: &mut [T], st: &OptimStep) {
    let lr = T::c(st.lr as f64);
    let wd = T::c(st.weight_decay as f64);
    match st.kind {
        OptimKind::Sgd => {
            for (w, &g) in w.iter_mut().zip(g) {
                let g = g + wd * *w;
                *w = *w - lr * g;
            }
        }
        OptimKind::Momentum { nesterov } => {
            let mu = T::c(st.momentum as f64);
            for ((w, &g), v) in w.iter_mut().zip(g).zip(s1.iter_mut()) {
                let g = g + wd * *w;
                *v = mu * *v + g;
                let d = if nesterov { g + mu * *v } else { *v };
                *w = *w - lr * d;
            }
        }
        OptimKind::Adam { decoupled } => {
            let (b1, b2, eps) = (T::c(st.beta1 as f64), T::c(st.beta2 as f64), T::c(st.eps as f64));
            let step_size = lr / T::c(st.bias_correction1() as f64);
            let sqrt_bc2 = T::c(st.bias_correction2() as f64).sqrt();
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(s1.iter_mut()).zip(s2.iter_mut()) {
                let g = if decoupled {
                    *w = *w * (T::one() - lr * wd);
                    g
                } else {
                    g + wd * *w
                };
                *m = b1 * *m + (T::one() - b1) * g;
                *v = b2 * *v + (T::one() - b2) * g * g;
                let denom = v.sqrt() / sqrt_bc2 + eps;
                *w = *w - step_size * *m / denom;
            }
        }
    }
}

/// Input conversion: gathers rows `idx[n]` of a `u8` table `src: [N, D]` into
/// `x: [B, D]` as `f32` in [0, 1] (`x = src · (1/255)`), and their labels into `y: [B]`.
pub fn gather_u8<T: Real>(src: &[u8], labels: &[u32], idx: &[u32], width: usize, x: &mut [T], y: &mut [u32]) {
    let inv = T::one() / T::c(255.0);
    for (n, &r) in idx.iter().enumerate() {
        let r = r as usize;
        for j in 0..width {
            x[n * width + j] = T::c(f64::from(src[r * width + j])) * inv;
        }
        y[n] = labels[r];
    }
}

/// Input gather for non-byte features: rows `idx[n]` of `src: [N, D]` into `x: [B, D]`,
/// their labels into `y: [B]`.
pub fn gather_f32<T: Real>(src: &[f32], labels: &[u32], idx: &[u32], width: usize, x: &mut [T], y: &mut [u32]) {
    for (n, &r) in idx.iter().enumerate() {
        let r = r as usize;
        for j in 0..width {
            x[n * width + j] = T::c(f64::from(src[r * width + j]));
        }
        y[n] = labels[r];
    }
}

/// One batch's metrics: `(Σ_n loss[n], Σ_n correct[n])`, summed in increasing `n`.
pub fn accumulate_stats<T: Real>(loss: &[T], correct: &[u32]) -> (T, u32) {
    let s = loss.iter().fold(T::zero(), |s, &l| s + l);
    (s, correct.iter().sum())
}
