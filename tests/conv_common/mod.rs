//! Shared by conv_reference.rs and conv_parity.rs: the lecture's explicit Jacobians of a
//! convolution and a max-pooling of one sample, built as matrices from the forward
//! definitions (not from the backward ops they check).
#![allow(dead_code)]

use wgtrain::cpu::conv::{Conv2dShape, Pool2dShape};

/// A dense matrix as rows.
pub type Matrix = Vec<Vec<f64>>;

/// `∂z/∂x: [C_out·H_out·W_out, C_in·H·W]` of `z = b + conv(x, w)` for one sample: row
/// `(co, oh, ow)` holds `w[co, ci, kh, kw]` at column `(ci, oh·s−p+kh, ow·s−p+kw)` for every
/// tap inside the input (a banded, Toeplitz-like matrix: each row is the kernel laid along
/// the flattened input, shifted by the stride from one row to the next).
pub fn conv_jacobian_x(s: &Conv2dShape, w: &[f64]) -> Matrix {
    let mut j = vec![vec![0.0; s.c_in * s.h * s.w]; s.c_out * s.h_out * s.w_out];
    for co in 0..s.c_out {
        for oh in 0..s.h_out {
            for ow in 0..s.w_out {
                let row = &mut j[(co * s.h_out + oh) * s.w_out + ow];
                for ci in 0..s.c_in {
                    for kh in 0..s.k {
                        for kw in 0..s.k {
                            let ih = (oh * s.stride + kh) as isize - s.pad as isize;
                            let iw = (ow * s.stride + kw) as isize - s.pad as isize;
                            if ih < 0 || iw < 0 || ih >= s.h as isize || iw >= s.w as isize {
                                continue;
                            }
                            let col = (ci * s.h + ih as usize) * s.w + iw as usize;
                            row[col] += w[((co * s.c_in + ci) * s.k + kh) * s.k + kw];
                        }
                    }
                }
            }
        }
    }
    j
}

/// `∂z/∂(w, b): [C_out·H_out·W_out, C_out·C_in·k·k + C_out]` for one sample: row
/// `(co, oh, ow)` holds the input patch under output `(oh, ow)` — `x[ci, oh·s−p+kh,
/// ow·s−p+kw]` (0 in the padding) — in the columns of output channel `co`'s weights (the
/// same patches repeated in each channel's block), and 1 in the column of `b[co]`.
pub fn conv_jacobian_w(s: &Conv2dShape, x: &[f64]) -> Matrix {
    let wl = s.weight_len();
    let mut j = vec![vec![0.0; wl + s.c_out]; s.c_out * s.h_out * s.w_out];
    for co in 0..s.c_out {
        for oh in 0..s.h_out {
            for ow in 0..s.w_out {
                let row = &mut j[(co * s.h_out + oh) * s.w_out + ow];
                for ci in 0..s.c_in {
                    for kh in 0..s.k {
                        for kw in 0..s.k {
                            let ih = (oh * s.stride + kh) as isize - s.pad as isize;
                            let iw = (ow * s.stride + kw) as isize - s.pad as isize;
                            let inside = ih >= 0 && iw >= 0 && ih < s.h as isize && iw < s.w as isize;
                            let v = if inside { x[(ci * s.h + ih as usize) * s.w + iw as usize] } else { 0.0 };
                            row[((co * s.c_in + ci) * s.k + kh) * s.k + kw] = v;
                        }
                    }
                }
                row[wl + co] = 1.0;
            }
        }
    }
    j
}

/// `∂y/∂x: [C·H_out·W_out, C·H·W]` of max-pooling one sample: the 0/1 selection matrix with
/// a single 1 per row, at the window's first maximum in row-major order (found here as the
/// first element equal to the window's largest value).
pub fn pool_jacobian(s: &Pool2dShape, x: &[f64]) -> Matrix {
    let mut j = vec![vec![0.0; s.in_len()]; s.out_len()];
    for c in 0..s.c {
        for oh in 0..s.h_out {
            for ow in 0..s.w_out {
                let window: Vec<usize> =
                    (0..s.k * s.k).map(|t| (c * s.h + oh * s.k + t / s.k) * s.w + ow * s.k + t % s.k).collect();
                let max = window.iter().map(|&i| x[i]).fold(f64::NEG_INFINITY, f64::max);
                let first = *window.iter().find(|&&i| x[i] == max).unwrap();
                j[(c * s.h_out + oh) * s.w_out + ow][first] = 1.0;
            }
        }
    }
    j
}

/// `J·u`.
pub fn apply(j: &Matrix, u: &[f64]) -> Vec<f64> {
    j.iter().map(|row| row.iter().zip(u).map(|(a, b)| a * b).sum()).collect()
}

/// `vᵀJ`.
pub fn vjp(v: &[f64], j: &Matrix) -> Vec<f64> {
    (0..j[0].len()).map(|c| (0..j.len()).map(|r| v[r] * j[r][c]).sum()).collect()
}

/// Whether `a ≈ b` to `tol` relative to `1 + |b|`, element by element.
pub fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

/// Values in `[-1, 1)` from a seeded stream.
pub fn values(rng: &mut wgtrain::rng::Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()
}

/// The Jacobian-check shapes: C_in 2, 4×4, k 3, pad 1, stride 1, and the stride-2 case.
pub fn jacobian_shapes() -> [Conv2dShape; 2] {
    [Conv2dShape::new(1, 2, 4, 4, 3, 3, 1, 1).unwrap(), Conv2dShape::new(1, 2, 4, 4, 3, 3, 2, 1).unwrap()]
}

/// A pooling input with ties: 2 channels of 5×5 (the last row and column dropped by a
/// 2×2 window), values from {−1, 0, ½, 1} so most windows hold equal maxima.
pub fn pool_tie_case(rng: &mut wgtrain::rng::Rng) -> (Pool2dShape, Vec<f64>) {
    let s = Pool2dShape::new(1, 2, 5, 5, 2).unwrap();
    let x = (0..s.in_len()).map(|_| [-1.0, 0.0, 0.5, 1.0][rng.below(4) as usize]).collect();
    (s, x)
}
