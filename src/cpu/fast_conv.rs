//! The convolution and max-pooling ops of [`super::conv`], fast: convolutions as im2col +
//! a `matrixmultiply` product (blocked, vectorised, both cores), sums in lanes, pooling a
//! window row at a time; im2col, col2im, the output's regrouping and the pooling split
//! across persistent workers ([`run`]), each value computed as a single thread would.
//! Same names, arguments and meaning (the pooling backward also fuses the mask of a ReLU
//! before it); tested against the plain loops. With `R = C_in·k·k` and `P = H_out·W_out`, the batch goes in chunks of `G`
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
use std::ops::Range;
use std::sync::OnceLock;
use thread_tree::{ThreadTree, ThreadTreeCtx};

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

/// Values of work below which an op runs on the calling thread alone, where handing half of
/// it to a worker would not pay.
const PARALLEL_MIN: usize = 32 * 1024;

/// The workers of [`run`], started on first use and kept, and their number: a thread tree
/// with one leaf per thread of the CPU, rounded down to a power of two (at most 8), the
/// calling thread one of them: handing a job over costs far less than starting a thread
/// (which took 150–180 µs on a 2-core VM). The products have `matrixmultiply`'s own.
fn pool() -> &'static (Box<ThreadTree>, usize) {
    static POOL: OnceLock<(Box<ThreadTree>, usize)> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let level = threads.ilog2().min(3) as usize;
        (ThreadTree::new_with_level(level), 1 << level)
    })
}

/// `units` units of work (`unit_work` values each) split into one contiguous range per
/// leaf of [`pool`], or a single range when the work is under [`PARALLEL_MIN`].
fn split(units: usize, unit_work: usize) -> Vec<Range<usize>> {
    let parts = if units * unit_work < PARALLEL_MIN { 1 } else { pool().1.min(units).max(1) };
    (0..parts).map(|i| units * i / parts..units * (i + 1) / parts).collect()
}

/// Each of `ranges` (consecutive units from unit 0, as [`split`] gives them) with its piece
/// of `v`, whose units are `unit` values long.
fn pieces<'a, T>(mut v: &'a mut [T], unit: usize, ranges: &[Range<usize>]) -> Vec<(Range<usize>, &'a mut [T])> {
    ranges
        .iter()
        .map(|r| {
            let (piece, rest) = std::mem::take(&mut v).split_at_mut(r.len() * unit);
            v = rest;
            (r.clone(), piece)
        })
        .collect()
}

/// Runs `f` on every job across [`pool`]'s leaves (halves of the list to the two branches
/// of each level; the calling thread takes the first). Every caller gives each job its own
/// units and the output slices of those units alone, computed as a single job would, so
/// the results do not depend on the split.
fn run<J: Send>(jobs: Vec<J>, f: impl Fn(J) + Sync) {
    fn on<J: Send>(ctx: ThreadTreeCtx<'_>, mut jobs: Vec<J>, f: &(impl Fn(J) + Sync)) {
        if jobs.len() <= 1 || !ctx.is_parallel() {
            jobs.into_iter().for_each(f);
            return;
        }
        let right = jobs.split_off(jobs.len().div_ceil(2));
        ctx.join(|c| on(c, jobs, f), |c| on(c, right, f));
    }
    if jobs.len() <= 1 {
        jobs.into_iter().for_each(f);
    } else {
        on(pool().0.top(), jobs, &f);
    }
}

/// Samples `n0..n0+g`'s patches: `cols: [R, g·P]`, rows split across the threads.
fn im2col<T: Real>(x: &[T], n0: usize, g: usize, s: &Conv2dShape, cols: &mut [T]) {
    let p = s.h_out * s.w_out;
    let gp = g * p;
    let r = s.c_in * s.k * s.k;
    run(pieces(&mut cols[..r * gp], gp, &split(r, gp)), |(rows, out)| {
        for (at, row) in rows.zip(out.chunks_exact_mut(gp)) {
            let (ci, kh, kw) = (at / (s.k * s.k), at / s.k % s.k, at % s.k);
            let (oh_range, cs) = (valid(s.h_out, s.h, kh, s), valid(s.w_out, s.w, kw, s));
            for (gi, dst) in row.chunks_exact_mut(p).enumerate() {
                let plane = &x[((n0 + gi) * s.c_in + ci) * s.h * s.w..][..s.h * s.w];
                dst.fill(T::zero());
                for oh in oh_range.clone() {
                    let ih = oh * s.stride + kh - s.pad;
                    let src = &plane[ih * s.w..(ih + 1) * s.w];
                    let d = &mut dst[oh * s.w_out..(oh + 1) * s.w_out];
                    for ow in cs.clone() {
                        d[ow] = src[ow * s.stride + kw - s.pad];
                    }
                }
            }
        }
    });
}

/// The transpose of [`im2col`] for samples `n0..n0+g`: each sample's `dx` set to the sum
/// of its patch entries of `cols`, then `⊙ [a_prev > 0]` where given; samples split
/// across the threads (each value of `dx` gets its sums in the same order).
fn col2im<T: Real>(cols: &[T], n0: usize, g: usize, s: &Conv2dShape, a_prev: Option<&[T]>, dx: &mut [T]) {
    let p = s.h_out * s.w_out;
    let gp = g * p;
    let plane_len = s.h * s.w;
    let parts = split(g, s.c_in * s.k * s.k * p);
    let samples = &mut dx[n0 * s.in_len()..(n0 + g) * s.in_len()];
    run(pieces(samples, s.in_len(), &parts), |(gs, out)| {
        for (gi, sample) in gs.zip(out.chunks_exact_mut(s.in_len())) {
            sample.fill(T::zero());
            for ci in 0..s.c_in {
                let plane = &mut sample[ci * plane_len..][..plane_len];
                for kh in 0..s.k {
                    let rows = valid(s.h_out, s.h, kh, s);
                    for kw in 0..s.k {
                        let cs = valid(s.w_out, s.w, kw, s);
                        let src = &cols[((ci * s.k + kh) * s.k + kw) * gp + gi * p..][..p];
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
            if let Some(a) = a_prev {
                super::ops::relu_mask(sample, &a[(n0 + gi) * s.in_len()..][..s.in_len()]);
            }
        }
    });
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
        let parts = split(g, s.out_len());
        let samples = &mut z[n0 * s.out_len()..(n0 + g) * s.out_len()];
        run(pieces(samples, s.out_len(), &parts), |(gs, zs)| {
            for (gi, sample) in gs.zip(zs.chunks_exact_mut(s.out_len())) {
                for (co, dst) in sample.chunks_exact_mut(p).enumerate() {
                    let src = &out[(co * g + gi) * p..][..p];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        let v = v + b[co];
                        *d = if relu { v.max(T::zero()) } else { v };
                    }
                }
            }
        });
    }
    give(cols);
    give(out);
}

/// `dx = convᵀ(dz, w)`, optionally `⊙ [a_prev > 0]`; see `conv::conv2d_backward_input`.
pub fn conv2d_backward_input<T: Real>(dz: &[T], w: &[T], a_prev: Option<&[T]>, dx: &mut [T], s: &Conv2dShape) {
    let (r, p, g) = (s.c_in * s.k * s.k, s.h_out * s.w_out, chunk(s));
    let (mut cols, mut dzc) = (take(r * g * p), take(s.c_out * g * p));
    for n0 in (0..s.batch).step_by(g) {
        let g = g.min(s.batch - n0);
        by_channel(dz, n0, g, s, &mut dzc);
        // As `dcolsᵀ = dZᵀ·W` (the long side as rows).
        gemm(g * p, s.c_out, r, (&dzc, 1, g * p), (w, r, 1), T::zero(), (&mut cols, 1, g * p));
        col2im(&cols, n0, g, s, a_prev, dx);
    }
    give(cols);
    give(dzc);
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
    let planes = s.batch * s.c;
    let parts = split(planes, plane_in);
    let ys = pieces(&mut y[..planes * plane_out], plane_out, &parts);
    let args = pieces(&mut argmax[..planes * plane_out], plane_out, &parts);
    let jobs = ys.into_iter().zip(args).map(|((ncs, ys), (_, args))| (ncs, ys, args)).collect();
    run(jobs, |(ncs, ys, args)| {
        for ((nc, ys), args) in ncs.zip(ys.chunks_exact_mut(plane_out)).zip(args.chunks_exact_mut(plane_out)) {
            let c = nc % s.c;
            let xs = &x[nc * plane_in..(nc + 1) * plane_in];
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
    });
}

/// Max-pooling backward, with the mask of a ReLU fused before it as in
/// [`conv2d_backward_input`]: `dx[argmax] = dy` where `a_prev[argmax] > 0` (or always
/// without `a_prev`), zero elsewhere; see `conv::maxpool2d_backward`.
pub fn maxpool2d_backward<T: Real>(dy: &[T], argmax: &[u32], a_prev: Option<&[T]>, dx: &mut [T], s: &Pool2dShape) {
    let (sample_len, out) = (s.in_len(), s.out_len());
    let parts = split(s.batch, sample_len);
    run(pieces(&mut dx[..s.batch * sample_len], sample_len, &parts), |(ns, dxs)| {
        dxs.fill(T::zero());
        for (n, dxs) in ns.zip(dxs.chunks_exact_mut(sample_len)) {
            let a = a_prev.map(|a| &a[n * sample_len..(n + 1) * sample_len]);
            for (&g, &at) in dy[n * out..(n + 1) * out].iter().zip(&argmax[n * out..(n + 1) * out]) {
                let at = at as usize;
                if a.is_none_or(|a| a[at] > T::zero()) {
                    dxs[at] = g;
                }
            }
        }
    });
}
