//! The convolution and max-pooling ops of [`super::conv`], fast: convolutions as im2col +
//! a `matrixmultiply` product (blocked, vectorised, both cores), sums in lanes, pooling a
//! window row at a time. Same names, arguments and meaning (the pooling backward also
//! fuses the mask of a ReLU before it); tested against the plain loops. With `R = C_in·k·k` and `P = H_out·W_out`, the batch goes in chunks of `G`
//! samples (about [`CHUNK_COLUMNS`] columns, so each product is large enough to run well
//! and its patches stay a few MB):
//!
//! - `cols: [R, G·P]`, `cols[(ci,kh,kw), (g,oh,ow)] = x[n₀+g, ci, oh·s−p+kh, ow·s−p+kw]`
//!   (0 outside)
//! - forward: `Z = W·cols` (`W` viewed as `[C_out, R]`), then `z[n₀+g, co, ·] = Z[co, g, ·] + b[co]`
//! - weights: `dW += dZ·colsᵀ`, `dZ: [C_out, G·P]` the chunk's `dz` regrouped by channel
//! - input: `dcols = Wᵀ·dZ`, then scattered back (col2im) into `dx`.

use super::conv::{Conv2dShape, Pool2dShape};
use super::fast::gemm;
use crate::Real;

/// Columns (`G·P`) of one chunk's products, about.
const CHUNK_COLUMNS: usize = 4096;

/// Samples per chunk for shape `s`.
fn chunk(s: &Conv2dShape) -> usize {
    (CHUNK_COLUMNS / (s.h_out * s.w_out)).clamp(1, s.batch.max(1))
}

/// The output columns `ow` whose tap `kw` lands inside `0..w`, as a range: `ow·s − p + kw`
/// in `0..w` ⇔ `ow ∈ [⌈(p − kw)/s⌉, ⌊(w − 1 + p − kw)/s⌋]`, clipped to `0..w_out`.
fn valid(out: usize, size: usize, t: usize, s: &Conv2dShape) -> std::ops::Range<usize> {
    let lo = s.pad.saturating_sub(t).div_ceil(s.stride);
    let hi = if size + s.pad > t { ((size - 1 + s.pad - t) / s.stride + 1).min(out) } else { 0 };
    lo.min(hi)..hi
}

/// Samples `n0..n0+g`'s patches: `cols: [R, g·P]`.
fn im2col<T: Real>(x: &[T], n0: usize, g: usize, s: &Conv2dShape, cols: &mut [T]) {
    let p = s.h_out * s.w_out;
    let gp = g * p;
    for ci in 0..s.c_in {
        for kh in 0..s.k {
            let rows = valid(s.h_out, s.h, kh, s);
            for kw in 0..s.k {
                let cs = valid(s.w_out, s.w, kw, s);
                let row = &mut cols[((ci * s.k + kh) * s.k + kw) * gp..][..gp];
                for (gi, dst) in row.chunks_exact_mut(p).enumerate() {
                    let plane = &x[((n0 + gi) * s.c_in + ci) * s.h * s.w..][..s.h * s.w];
                    dst.fill(T::zero());
                    for oh in rows.clone() {
                        let ih = oh * s.stride + kh - s.pad;
                        let src = &plane[ih * s.w..(ih + 1) * s.w];
                        let d = &mut dst[oh * s.w_out..(oh + 1) * s.w_out];
                        for ow in cs.clone() {
                            d[ow] = src[ow * s.stride + kw - s.pad];
                        }
                    }
                }
            }
        }
    }
}

/// The transpose of [`im2col`]: adds each patch entry of `cols` back into `dx`.
fn col2im<T: Real>(cols: &[T], n0: usize, g: usize, s: &Conv2dShape, dx: &mut [T]) {
    let p = s.h_out * s.w_out;
    let gp = g * p;
    for ci in 0..s.c_in {
        for kh in 0..s.k {
            let rows = valid(s.h_out, s.h, kh, s);
            for kw in 0..s.k {
                let cs = valid(s.w_out, s.w, kw, s);
                let row = &cols[((ci * s.k + kh) * s.k + kw) * gp..][..gp];
                for (gi, src) in row.chunks_exact(p).enumerate() {
                    let plane = &mut dx[((n0 + gi) * s.c_in + ci) * s.h * s.w..][..s.h * s.w];
                    for oh in rows.clone() {
                        let ih = oh * s.stride + kh - s.pad;
                        let d = &mut plane[ih * s.w..(ih + 1) * s.w];
                        let v = &src[oh * s.w_out..(oh + 1) * s.w_out];
                        for ow in cs.clone() {
                            let at = ow * s.stride + kw - s.pad;
                            d[at] = d[at] + v[ow];
                        }
                    }
                }
            }
        }
    }
}

/// Samples `n0..n0+g` of `dz: [B, C_out, P]` regrouped by channel: `dzc: [C_out, g·P]`.
fn by_channel<T: Real>(dz: &[T], n0: usize, g: usize, s: &Conv2dShape, dzc: &mut [T]) {
    let p = s.h_out * s.w_out;
    for gi in 0..g {
        for co in 0..s.c_out {
            let src = &dz[((n0 + gi) * s.c_out + co) * p..][..p];
            dzc[(co * g + gi) * p..][..p].copy_from_slice(src);
        }
    }
}

thread_local! {
    /// Buffers of earlier calls on this thread, kept for the next (patches are megabytes:
    /// allocating and zeroing them for every product of every step showed in the step time).
    static SCRATCH: std::cell::RefCell<Vec<Box<dyn std::any::Any>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer of `len` values for the patches or the regrouped gradient, reused from an
/// earlier call when one is free. Its values are stale: every caller writes each value
/// it reads (im2col, `by_channel` and the products with `β = 0` overwrite).
fn take<T: Real>(len: usize) -> Vec<T> {
    let kept = SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().position(|b| b.is::<Vec<T>>())?;
        s.swap_remove(i).downcast::<Vec<T>>().ok().map(|b| *b)
    });
    let mut v = kept.unwrap_or_default();
    v.resize(len, T::zero());
    v
}

/// Returns a [`take`]n buffer for the next call.
fn give<T: Real>(v: Vec<T>) {
    SCRATCH.with(|s| s.borrow_mut().push(Box::new(v)));
}

/// `z = b + conv(x, w)`, ReLU optionally fused; see `conv::conv2d_forward`.
pub fn conv2d_forward<T: Real>(x: &[T], w: &[T], b: &[T], z: &mut [T], s: &Conv2dShape, relu: bool) {
    let (r, p, g) = (s.c_in * s.k * s.k, s.h_out * s.w_out, chunk(s));
    let (mut cols, mut out) = (take(r * g * p), take(s.c_out * g * p));
    for n0 in (0..s.batch).step_by(g) {
        let g = g.min(s.batch - n0);
        im2col(x, n0, g, s, &mut cols);
        // As `Zᵀ = colsᵀ·Wᵀ` (the long side as rows: the product splits over both cores).
        gemm(g * p, r, s.c_out, (&cols, 1, g * p), (w, 1, r), T::zero(), (&mut out, 1, g * p));
        for gi in 0..g {
            for co in 0..s.c_out {
                let src = &out[(co * g + gi) * p..][..p];
                let dst = &mut z[((n0 + gi) * s.c_out + co) * p..][..p];
                for (d, &v) in dst.iter_mut().zip(src) {
                    let v = v + b[co];
                    *d = if relu { v.max(T::zero()) } else { v };
                }
            }
        }
    }
    give(cols);
    give(out);
}

/// `dx = convᵀ(dz, w)`, optionally `⊙ [a_prev > 0]`; see `conv::conv2d_backward_input`.
pub fn conv2d_backward_input<T: Real>(dz: &[T], w: &[T], a_prev: Option<&[T]>, dx: &mut [T], s: &Conv2dShape) {
    let (r, p, g) = (s.c_in * s.k * s.k, s.h_out * s.w_out, chunk(s));
    let (mut cols, mut dzc) = (take(r * g * p), take(s.c_out * g * p));
    dx[..s.batch * s.in_len()].fill(T::zero());
    for n0 in (0..s.batch).step_by(g) {
        let g = g.min(s.batch - n0);
        by_channel(dz, n0, g, s, &mut dzc);
        // As `dcolsᵀ = dZᵀ·W` (the long side as rows).
        gemm(g * p, s.c_out, r, (&dzc, 1, g * p), (w, r, 1), T::zero(), (&mut cols, 1, g * p));
        col2im(&cols, n0, g, s, dx);
    }
    give(cols);
    give(dzc);
    if let Some(a) = a_prev {
        super::ops::relu_mask(&mut dx[..s.batch * s.in_len()], a);
    }
}

/// `dw (+)= Σ dZ·colsᵀ` over the chunks; see `conv::conv2d_backward_weights`.
pub fn conv2d_backward_weights<T: Real>(dz: &[T], x: &[T], dw: &mut [T], s: &Conv2dShape, accumulate: bool) {
    let (r, p, g) = (s.c_in * s.k * s.k, s.h_out * s.w_out, chunk(s));
    let (mut cols, mut dzc) = (take(r * g * p), take(s.c_out * g * p));
    if !accumulate {
        dw[..s.weight_len()].fill(T::zero());
    }
    for n0 in (0..s.batch).step_by(g) {
        let g = g.min(s.batch - n0);
        im2col(x, n0, g, s, &mut cols);
        by_channel(dz, n0, g, s, &mut dzc);
        gemm(s.c_out, g * p, r, (&dzc, g * p, 1), (&cols, 1, g * p), T::one(), (dw, r, 1));
    }
    give(cols);
    give(dzc);
}

/// Sums `v` in eight interleaved lanes (vectorizes; the order differs from a plain loop's).
fn lane_sum<T: Real>(v: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = *a + x;
        }
    }
    let tail = chunks.remainder().iter().fold(T::zero(), |s, &x| s + x);
    acc.iter().fold(tail, |s, &a| s + a)
}

/// `db (+)= Σ_{n,oh,ow} dz`, each plane summed in lanes; see `conv::conv2d_backward_bias`.
pub fn conv2d_backward_bias<T: Real>(dz: &[T], db: &mut [T], s: &Conv2dShape, accumulate: bool) {
    let p = s.h_out * s.w_out;
    if !accumulate {
        db[..s.c_out].fill(T::zero());
    }
    for (i, plane) in dz[..s.batch * s.c_out * p].chunks_exact(p).enumerate() {
        let co = i % s.c_out;
        db[co] = db[co] + lane_sum(plane);
    }
}

/// Max-pooling forward, a window row at a time; see `conv::maxpool2d_forward` (the same
/// choice: first maximum in row-major window order, the first NaN kept).
pub fn maxpool2d_forward<T: Real>(x: &[T], y: &mut [T], argmax: &mut [u32], s: &Pool2dShape) {
    let (k, plane_in, plane_out) = (s.k, s.h * s.w, s.h_out * s.w_out);
    for nc in 0..s.batch * s.c {
        let c = nc % s.c;
        let xs = &x[nc * plane_in..(nc + 1) * plane_in];
        let ys = &mut y[nc * plane_out..(nc + 1) * plane_out];
        let args = &mut argmax[nc * plane_out..(nc + 1) * plane_out];
        for oh in 0..s.h_out {
            let yr = &mut ys[oh * s.w_out..(oh + 1) * s.w_out];
            let ar = &mut args[oh * s.w_out..(oh + 1) * s.w_out];
            for i in 0..k {
                let h = oh * k + i;
                let row = &xs[h * s.w..h * s.w + s.w_out * k];
                for (ow, win) in row.chunks_exact(k).enumerate() {
                    for (j, &v) in win.iter().enumerate() {
                        let first = i == 0 && j == 0;
                        let best = yr[ow];
                        if first || (!best.is_nan() && (v > best || v.is_nan())) {
                            yr[ow] = v;
                            ar[ow] = ((c * s.h + h) * s.w + ow * k + j) as u32;
                        }
                    }
                }
            }
        }
    }
}

/// Max-pooling backward, with the mask of a ReLU fused before it as in
/// [`conv2d_backward_input`]: `dx[argmax] = dy` where `a_prev[argmax] > 0` (or always
/// without `a_prev`), zero elsewhere; see `conv::maxpool2d_backward`.
pub fn maxpool2d_backward<T: Real>(dy: &[T], argmax: &[u32], a_prev: Option<&[T]>, dx: &mut [T], s: &Pool2dShape) {
    let (plane_in, out) = (s.in_len(), s.out_len());
    dx[..s.batch * plane_in].fill(T::zero());
    for n in 0..s.batch {
        let dxs = &mut dx[n * plane_in..(n + 1) * plane_in];
        let a = a_prev.map(|a| &a[n * plane_in..(n + 1) * plane_in]);
        for (&g, &at) in dy[n * out..(n + 1) * out].iter().zip(&argmax[n * out..(n + 1) * out]) {
            let at = at as usize;
            if a.is_none_or(|a| a[at] > T::zero()) {
                dxs[at] = g;
            }
        }
    }
}
