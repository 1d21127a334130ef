//! The CPU twins of the convolution and max-pooling kernels (`shaders/conv2d.wgsl`,
//! `shaders/maxpool2d.wgsl`): plain loops, obviously right, generic over `f32` and `f64`,
//! and the shape helpers every caller (CPU, GPU runners, verify, tests) goes through.
//!
//! Layout NCHW as PyTorch: a batch is row-major, row `n` one sample of `C·H·W` values in
//! CHW order, so `x[n, c, h, w] = x[((n·C + c)·H + h)·W + w]`. A convolution weight is
//! `w: [C_out, C_in, k, k]` row-major (PyTorch's layout), its bias `b: [C_out]`.

use crate::error::{Error, Result};
use crate::Real;

/// The shape of one 2-D convolution over a batch: square kernel `k`, stride `s`, zero
/// padding `p`; `H_out = ⌊(H + 2p − k)/s⌋ + 1`, likewise `W_out`. Built only by
/// [`Conv2dShape::new`], which rejects a kernel larger than the padded input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Conv2dShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl Conv2dShape {
    /// Checks and completes a convolution's shape: every extent, `k` and `stride` at
    /// least 1, and `k ≤ H + 2p`, `k ≤ W + 2p` (else [`Error::Shape`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        let what = format!("conv2d B={batch} C_in={c_in} {h}x{w} C_out={c_out} k={k} stride={stride} pad={pad}");
        if batch == 0 || c_in == 0 || h == 0 || w == 0 || c_out == 0 || k == 0 || stride == 0 {
            return Err(Error::shape("conv2d", "every extent, the kernel and the stride at least 1", what));
        }
        if k > h + 2 * pad || k > w + 2 * pad {
            let (hp, wp) = (h + 2 * pad, w + 2 * pad);
            let expected = format!("a kernel no larger than the padded input {hp}x{wp}");
            return Err(Error::shape("conv2d", expected, format!("a {k}x{k} kernel ({what})")));
        }
        let h_out = (h + 2 * pad - k) / stride + 1;
        let w_out = (w + 2 * pad - k) / stride + 1;
        Ok(Conv2dShape { batch, c_in, h, w, c_out, k, stride, pad, h_out, w_out })
    }

    /// The same convolution over a batch of `batch` samples.
    pub fn with_batch(&self, batch: usize) -> Self {
        Conv2dShape { batch, ..*self }
    }

    /// Values per input sample, `C_in·H·W`.
    pub fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// Values per output sample, `C_out·H_out·W_out`.
    pub fn out_len(&self) -> usize {
        self.c_out * self.h_out * self.w_out
    }

    /// Weights, `C_out·C_in·k·k`.
    pub fn weight_len(&self) -> usize {
        self.c_out * self.c_in * self.k * self.k
    }

    /// The input coordinate that tap `t` (a row `kh` or column `kw`) of output position `o`
    /// reads, `o·s − p + t`, or `None` in the zero padding outside `0..size`.
    pub fn tap(&self, o: usize, t: usize, size: usize) -> Option<usize> {
        (o * self.stride + t).checked_sub(self.pad).filter(|&i| i < size)
    }
}

impl std::fmt::Display for Conv2dShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "B={} {}x{}x{} -> {}x{}x{} k={} s={} p={}",
            self.batch, self.c_in, self.h, self.w, self.c_out, self.h_out, self.w_out, self.k, self.stride, self.pad
        )
    }
}

/// The shape of one max-pooling over a batch: `k×k` windows, stride `k` (PyTorch's
/// default), no padding, floor mode: `H_out = ⌊H/k⌋`, `W_out = ⌊W/k⌋` (the last rows
/// and columns that fill no whole window are dropped). Built only by [`Pool2dShape::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pool2dShape {
    pub batch: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub h_out: usize,
    pub w_out: usize,
}

impl Pool2dShape {
    /// Checks and completes a pooling's shape: every extent at least 1 and `k ≤ H`, `k ≤ W`
    /// (else [`Error::Shape`]).
    pub fn new(batch: usize, c: usize, h: usize, w: usize, k: usize) -> Result<Self> {
        let what = format!("maxpool2d B={batch} C={c} {h}x{w} k={k}");
        if batch == 0 || c == 0 || h == 0 || w == 0 || k == 0 {
            return Err(Error::shape("maxpool2d", "every extent and the window at least 1", what));
        }
        if k > h || k > w {
            let expected = format!("a window no larger than the {h}x{w} input");
            return Err(Error::shape("maxpool2d", expected, format!("a {k}x{k} window ({what})")));
        }
        Ok(Pool2dShape { batch, c, h, w, k, h_out: h / k, w_out: w / k })
    }

    /// The same pooling over a batch of `batch` samples.
    pub fn with_batch(&self, batch: usize) -> Self {
        Pool2dShape { batch, ..*self }
    }

    /// Values per input sample, `C·H·W`.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Values per output sample, `C·H_out·W_out`.
    pub fn out_len(&self) -> usize {
        self.c * self.h_out * self.w_out
    }
}

impl std::fmt::Display for Pool2dShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "B={} {}x{}x{} k={} -> {}x{}", self.batch, self.c, self.h, self.w, self.k, self.h_out, self.w_out)
    }
}

fn relu_scalar<T: Real>(v: T) -> T {
    if v > T::zero() {
        v
    } else {
        T::zero()
    }
}

/// 2-D convolution forward, ReLU optionally fused:
/// `z[n,co,oh,ow] = b[co] + Σ_{ci,kh,kw} w[co,ci,kh,kw]·x[n,ci,oh·s−p+kh,ow·s−p+kw]`
/// (zero outside the input), then `max(z, 0)` when `relu`.
///
/// `x: [B, C_in, H, W]`, `w: [C_out, C_in, k, k]`, `b: [C_out]`, `z: [B, C_out, H_out, W_out]`.
pub fn conv2d_forward<T: Real>(x: &[T], w: &[T], b: &[T], z: &mut [T], s: &Conv2dShape, relu: bool) {
    let (k, hw) = (s.k, s.h * s.w);
    for n in 0..s.batch {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let mut acc = b[co];
                    for ci in 0..s.c_in {
                        for kh in 0..k {
                            let Some(ih) = s.tap(oh, kh, s.h) else { continue };
                            for kw in 0..k {
                                let Some(iw) = s.tap(ow, kw, s.w) else { continue };
                                let xv = x[(n * s.c_in + ci) * hw + ih * s.w + iw];
                                acc = acc + w[((co * s.c_in + ci) * k + kh) * k + kw] * xv;
                            }
                        }
                    }
                    let at = ((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow;
                    z[at] = if relu { relu_scalar(acc) } else { acc };
                }
            }
        }
    }
}

/// 2-D convolution backward, input (forward: [`conv2d_forward`], `z = b + conv(x, w)`):
/// the transposed convolution, each input summing the outputs it feeds,
/// `dx[n,ci,ih,iw] = Σ_{co,oh,ow,kh,kw : oh·s−p+kh = ih, ow·s−p+kw = iw} dz[n,co,oh,ow]·w[co,ci,kh,kw]`,
/// written here as the forward's loops with the product scattered back. The previous
/// layer's ReLU mask is optionally fused as in `fc_backward_input`: `dx ⊙ [a_prev > 0]`.
///
/// `dz: [B, C_out, H_out, W_out]`, `w: [C_out, C_in, k, k]`, `a_prev, dx: [B, C_in, H, W]`.
pub fn conv2d_backward_input<T: Real>(dz: &[T], w: &[T], a_prev: Option<&[T]>, dx: &mut [T], s: &Conv2dShape) {
    let (k, hw) = (s.k, s.h * s.w);
    dx[..s.batch * s.in_len()].fill(T::zero());
    for n in 0..s.batch {
        for co in 0..s.c_out {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let g = dz[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow];
                    for ci in 0..s.c_in {
                        for kh in 0..k {
                            let Some(ih) = s.tap(oh, kh, s.h) else { continue };
                            for kw in 0..k {
                                let Some(iw) = s.tap(ow, kw, s.w) else { continue };
                                let at = (n * s.c_in + ci) * hw + ih * s.w + iw;
                                dx[at] = dx[at] + g * w[((co * s.c_in + ci) * k + kh) * k + kw];
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(a) = a_prev {
        super::ops::relu_mask(&mut dx[..s.batch * s.in_len()], a);
    }
}

/// 2-D convolution backward, weights (forward: [`conv2d_forward`]):
/// `dw[co,ci,kh,kw] = Σ_{n,oh,ow} dz[n,co,oh,ow]·x[n,ci,oh·s−p+kh,ow·s−p+kw]` (zero outside),
/// added to what is there when `accumulate` (full-batch gradients over chunks).
///
/// `dz: [B, C_out, H_out, W_out]`, `x: [B, C_in, H, W]`, `dw: [C_out, C_in, k, k]`.
pub fn conv2d_backward_weights<T: Real>(dz: &[T], x: &[T], dw: &mut [T], s: &Conv2dShape, accumulate: bool) {
    let (k, hw) = (s.k, s.h * s.w);
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            for kh in 0..k {
                for kw in 0..k {
                    let mut acc = T::zero();
                    for n in 0..s.batch {
                        for oh in 0..s.h_out {
                            let Some(ih) = s.tap(oh, kh, s.h) else { continue };
                            for ow in 0..s.w_out {
                                let Some(iw) = s.tap(ow, kw, s.w) else { continue };
                                let g = dz[((n * s.c_out + co) * s.h_out + oh) * s.w_out + ow];
                                acc = acc + g * x[(n * s.c_in + ci) * hw + ih * s.w + iw];
                            }
                        }
                    }
                    let at = ((co * s.c_in + ci) * k + kh) * k + kw;
                    dw[at] = if accumulate { dw[at] + acc } else { acc };
                }
            }
        }
    }
}

/// 2-D convolution backward, bias (forward: [`conv2d_forward`]):
/// `db[co] = Σ_{n,oh,ow} dz[n,co,oh,ow]`, added to what is there when `accumulate`.
///
/// `dz: [B, C_out, H_out, W_out]`, `db: [C_out]`.
pub fn conv2d_backward_bias<T: Real>(dz: &[T], db: &mut [T], s: &Conv2dShape, accumulate: bool) {
    let plane = s.h_out * s.w_out;
    for co in 0..s.c_out {
        let mut acc = T::zero();
        for n in 0..s.batch {
            for &g in &dz[(n * s.c_out + co) * plane..(n * s.c_out + co + 1) * plane] {
                acc = acc + g;
            }
        }
        db[co] = if accumulate { db[co] + acc } else { acc };
    }
}

/// Max-pooling forward over `k×k` windows with stride `k`:
/// `y[n,c,oh,ow] = max_{i,j<k} x[n,c,oh·k+i,ow·k+j]`, and `argmax[n,c,oh,ow]` the index
/// within the sample (`(c·H + h)·W + w`) of the value chosen.
///
/// Ties go to the first maximum in row-major window order (PyTorch's choice): a later
/// value replaces the current one only when strictly greater. NaN propagates: the first
/// NaN in window order is chosen and kept (nothing compares greater than it), so a window
/// holding a NaN gives NaN, and its argmax points at that first NaN.
///
/// `x: [B, C, H, W]`, `y, argmax: [B, C, H_out, W_out]`.
pub fn maxpool2d_forward<T: Real>(x: &[T], y: &mut [T], argmax: &mut [u32], s: &Pool2dShape) {
    for n in 0..s.batch {
        for c in 0..s.c {
            for oh in 0..s.h_out {
                for ow in 0..s.w_out {
                    let mut best = T::zero();
                    let mut arg = usize::MAX;
                    for i in 0..s.k {
                        for j in 0..s.k {
                            let at = (c * s.h + oh * s.k + i) * s.w + ow * s.k + j;
                            let v = x[n * s.in_len() + at];
                            let take = arg == usize::MAX || (!best.is_nan() && (v > best || v.is_nan()));
                            if take {
                                best = v;
                                arg = at;
                            }
                        }
                    }
                    let o = n * s.out_len() + (c * s.h_out + oh) * s.w_out + ow;
                    y[o] = best;
                    argmax[o] = arg as u32;
                }
            }
        }
    }
}

/// Max-pooling backward (forward: [`maxpool2d_forward`]): each output's gradient goes to
/// the input its window chose, `dx[n, argmax[n,c,oh,ow]] += dy[n,c,oh,ow]`, zero elsewhere
/// (inputs in no window, or not chosen). With stride `k` the windows do not overlap, so
/// each input receives at most one gradient.
///
/// `dy, argmax: [B, C, H_out, W_out]`, `dx: [B, C, H, W]`.
pub fn maxpool2d_backward<T: Real>(dy: &[T], argmax: &[u32], dx: &mut [T], s: &Pool2dShape) {
    dx[..s.batch * s.in_len()].fill(T::zero());
    for n in 0..s.batch {
        for o in 0..s.out_len() {
            let at = n * s.in_len() + argmax[n * s.out_len() + o] as usize;
            dx[at] = dx[at] + dy[n * s.out_len() + o];
        }
    }
}

/// The patches of a batch as a matrix (`shaders/conv_im2col.wgsl`): with
/// `P = H_out·W_out`, `K = C_in·k·k`, row `r = n·P + oh·W_out + ow` and column
/// `c = (ci·k + kh)·k + kw`, `cols[r, c] = x[n, ci, oh·s−p+kh, ow·s−p+kw]` (zero in the
/// padding). Then `conv2d_forward` is `cols·Wᵀ + b` with `W` viewed as `[C_out, K]`.
///
/// `x: [B, C_in, H, W]`, `cols: [B·P, K]`.
pub fn conv_im2col<T: Real>(x: &[T], cols: &mut [T], s: &Conv2dShape) {
    let (k, hw) = (s.k, s.h * s.w);
    let kdim = s.c_in * k * k;
    for n in 0..s.batch {
        for oh in 0..s.h_out {
            for ow in 0..s.w_out {
                let r = (n * s.h_out + oh) * s.w_out + ow;
                for ci in 0..s.c_in {
                    for kh in 0..k {
                        for kw in 0..k {
                            let v = match (s.tap(oh, kh, s.h), s.tap(ow, kw, s.w)) {
                                (Some(ih), Some(iw)) => x[(n * s.c_in + ci) * hw + ih * s.w + iw],
                                _ => T::zero(),
                            };
                            cols[r * kdim + (ci * k + kh) * k + kw] = v;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`conv_im2col`], as a gather: each input sums the patch entries that
/// copied it, `dx[n, ci, ih, iw] = Σ_{kh,kw : oh·s−p+kh = ih, ow·s−p+kw = iw} dcols[r, c]`
/// (row and column as in [`conv_im2col`]), the taps in `(kh, kw)` increasing order from
/// zero; then `⊙ [a_prev > 0]` when given. With `dcols = dZ·W` this is
/// `conv2d_backward_input`.
///
/// `dcols: [B·H_out·W_out, C_in·k·k]`, `a_prev, dx: [B, C_in, H, W]`.
pub fn conv_col2im<T: Real>(dcols: &[T], a_prev: Option<&[T]>, dx: &mut [T], s: &Conv2dShape) {
    let k = s.k;
    let kdim = s.c_in * k * k;
    // The output coordinate whose tap t reads input coordinate i, if any.
    let from = |i: usize, t: usize, size_out: usize| {
        let o = (i + s.pad).checked_sub(t)?;
        (o % s.stride == 0 && o / s.stride < size_out).then_some(o / s.stride)
    };
    for n in 0..s.batch {
        for ci in 0..s.c_in {
            for ih in 0..s.h {
                for iw in 0..s.w {
                    let mut acc = T::zero();
                    for kh in 0..k {
                        let Some(oh) = from(ih, kh, s.h_out) else { continue };
                        for kw in 0..k {
                            let Some(ow) = from(iw, kw, s.w_out) else { continue };
                            let r = (n * s.h_out + oh) * s.w_out + ow;
                            acc = acc + dcols[r * kdim + (ci * k + kh) * k + kw];
                        }
                    }
                    dx[((n * s.c_in + ci) * s.h + ih) * s.w + iw] = acc;
                }
            }
        }
    }
    if let Some(a) = a_prev {
        super::ops::relu_mask(&mut dx[..s.batch * s.in_len()], a);
    }
}

/// A convolution's output from the GEMM's row layout to NCHW, with `P = H_out·W_out`:
/// `z[n, co, q] = rows[n·P + q, co]`. `rows: [B·P, C_out]`, `z: [B, C_out, H_out, W_out]`.
pub fn conv_rows_to_nchw<T: Real>(rows: &[T], z: &mut [T], s: &Conv2dShape) {
    let plane = s.h_out * s.w_out;
    for n in 0..s.batch {
        for co in 0..s.c_out {
            for q in 0..plane {
                z[(n * s.c_out + co) * plane + q] = rows[(n * plane + q) * s.c_out + co];
            }
        }
    }
}

/// The inverse of [`conv_rows_to_nchw`]: `rows[n·P + q, co] = z[n, co, q]` (the output
/// gradient `dZ` as the GEMMs' rows). `z: [B, C_out, H_out, W_out]`, `rows: [B·P, C_out]`.
pub fn conv_nchw_to_rows<T: Real>(z: &[T], rows: &mut [T], s: &Conv2dShape) {
    let plane = s.h_out * s.w_out;
    for n in 0..s.batch {
        for co in 0..s.c_out {
            for q in 0..plane {
                rows[(n * plane + q) * s.c_out + co] = z[(n * s.c_out + co) * plane + q];
            }
        }
    }
}
