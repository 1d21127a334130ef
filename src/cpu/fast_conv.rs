//! The convolution ops of [`super::conv`] as im2col + a `matrixmultiply` product (blocked,
//! vectorised, both cores). Same names, arguments and meaning; tested against the plain
//! loops. Per sample `n`, with `R = C_in·k·k` and `P = H_out·W_out`:
//!
//! - `cols_n: [R, P]`, `cols_n[(ci,kh,kw), (oh,ow)] = x[n,ci,oh·s−p+kh,ow·s−p+kw]` (0 outside)
//! - forward: `z_n = W·cols_n + b`, `W` viewed as `[C_out, R]`
//! - weights: `dW = Σ_n dz_n·cols_nᵀ`
//! - input: `dcols_n = Wᵀ·dz_n`, then scattered back (col2im) into `dx_n`.

use super::conv::Conv2dShape;
use super::fast::gemm;
use crate::Real;

/// Sample `n`'s patches: `cols: [C_in·k·k, H_out·W_out]`.
fn im2col<T: Real>(x: &[T], n: usize, s: &Conv2dShape, cols: &mut [T]) {
    let p = s.h_out * s.w_out;
    let xs = &x[n * s.in_len()..(n + 1) * s.in_len()];
    for ci in 0..s.c_in {
        for kh in 0..s.k {
            for kw in 0..s.k {
                let row = &mut cols[((ci * s.k + kh) * s.k + kw) * p..][..p];
                for oh in 0..s.h_out {
                    let ih = s.tap(oh, kh, s.h);
                    for ow in 0..s.w_out {
                        row[oh * s.w_out + ow] = match (ih, s.tap(ow, kw, s.w)) {
                            (Some(ih), Some(iw)) => xs[(ci * s.h + ih) * s.w + iw],
                            _ => T::zero(),
                        };
                    }
                }
            }
        }
    }
}

/// The transpose of [`im2col`]: adds each patch entry of `cols` back into `dx` (sample `n`).
fn col2im<T: Real>(cols: &[T], n: usize, s: &Conv2dShape, dx: &mut [T]) {
    let p = s.h_out * s.w_out;
    let dxs = &mut dx[n * s.in_len()..(n + 1) * s.in_len()];
    for ci in 0..s.c_in {
        for kh in 0..s.k {
            for kw in 0..s.k {
                let row = &cols[((ci * s.k + kh) * s.k + kw) * p..][..p];
                for oh in 0..s.h_out {
                    let Some(ih) = s.tap(oh, kh, s.h) else { continue };
                    for ow in 0..s.w_out {
                        let Some(iw) = s.tap(ow, kw, s.w) else { continue };
                        let at = (ci * s.h + ih) * s.w + iw;
                        dxs[at] = dxs[at] + row[oh * s.w_out + ow];
                    }
                }
            }
        }
    }
}

/// `z = b + conv(x, w)`, ReLU optionally fused; see `conv::conv2d_forward`.
pub fn conv2d_forward<T: Real>(x: &[T], w: &[T], b: &[T], z: &mut [T], s: &Conv2dShape, relu: bool) {
    let (r, p) = (s.c_in * s.k * s.k, s.h_out * s.w_out);
    let mut cols = vec![T::zero(); r * p];
    for n in 0..s.batch {
        im2col(x, n, s, &mut cols);
        let zn = &mut z[n * s.out_len()..(n + 1) * s.out_len()];
        for (co, row) in zn.chunks_exact_mut(p).enumerate() {
            row.fill(b[co]);
        }
        gemm(s.c_out, r, p, (w, r, 1), (&cols, p, 1), T::one(), (zn, p, 1));
        if relu {
            for v in zn.iter_mut() {
                *v = v.max(T::zero());
            }
        }
    }
}

/// `dx = convᵀ(dz, w)`, optionally `⊙ [a_prev > 0]`; see `conv::conv2d_backward_input`.
pub fn conv2d_backward_input<T: Real>(dz: &[T], w: &[T], a_prev: Option<&[T]>, dx: &mut [T], s: &Conv2dShape) {
    let (r, p) = (s.c_in * s.k * s.k, s.h_out * s.w_out);
    let mut cols = vec![T::zero(); r * p];
    dx[..s.batch * s.in_len()].fill(T::zero());
    for n in 0..s.batch {
        let dzn = &dz[n * s.out_len()..(n + 1) * s.out_len()];
        gemm(r, s.c_out, p, (w, 1, r), (dzn, p, 1), T::zero(), (&mut cols, p, 1));
        col2im(&cols, n, s, dx);
    }
    if let Some(a) = a_prev {
        super::ops::relu_mask(&mut dx[..s.batch * s.in_len()], a);
    }
}

/// `dw (+)= Σ_n dz_n·cols_nᵀ`; see `conv::conv2d_backward_weights`.
pub fn conv2d_backward_weights<T: Real>(dz: &[T], x: &[T], dw: &mut [T], s: &Conv2dShape, accumulate: bool) {
    let (r, p) = (s.c_in * s.k * s.k, s.h_out * s.w_out);
    let mut cols = vec![T::zero(); r * p];
    if !accumulate {
        dw[..s.weight_len()].fill(T::zero());
    }
    for n in 0..s.batch {
        im2col(x, n, s, &mut cols);
        let dzn = &dz[n * s.out_len()..(n + 1) * s.out_len()];
        gemm(s.c_out, p, r, (dzn, p, 1), (&cols, 1, p), T::one(), (dw, r, 1));
    }
}

/// `db (+)= Σ_{n,oh,ow} dz`; the plain loop (no product to speed up).
pub fn conv2d_backward_bias<T: Real>(dz: &[T], db: &mut [T], s: &Conv2dShape, accumulate: bool) {
    super::conv::conv2d_backward_bias(dz, db, s, accumulate);
}
