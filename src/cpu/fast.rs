//! The fully connected ops of [`super::ops`] with their matrix products done by
//! `matrixmultiply` (blocked, vectorised, both cores), and the bias gradient summed row
//! by row. Same names, arguments and meaning; tested against the plain loops.

use crate::Real;

/// Checks that a strided `rows × cols` view starting at 0 stays inside `len`.
fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `C ← A·B + β·C` for row/column strides, bounds checked (also used by `fast_conv`).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: (&[T], usize, usize),
    b: (&[T], usize, usize),
    beta: T,
    c: (&mut [T], usize, usize),
) {
    assert!(fits(a.0.len(), m, k, a.1, a.2), "gemm: A out of bounds");
    assert!(fits(b.0.len(), k, n, b.1, b.2), "gemm: B out of bounds");
    assert!(fits(c.0.len(), m, n, c.1, c.2), "gemm: C out of bounds");
    // SAFETY: the asserts above keep every strided access inside the slices.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            a.0,
            a.1 as isize,
            a.2 as isize,
            b.0,
            b.1 as isize,
            b.2 as isize,
            beta,
            c.0,
            c.1 as isize,
            c.2 as isize,
        )
    }
}

/// `Z = X·Wᵀ + b`, ReLU optionally fused. `x: [B, IN]`, `w: [OUT, IN]`, `z: [B, OUT]`.
#[allow(clippy::too_many_arguments)]
pub fn fc_forward<T: Real>(x: &[T], w: &[T], b: &[T], z: &mut [T], batch: usize, inp: usize, out: usize, relu: bool) {
    for row in z[..batch * out].chunks_exact_mut(out) {
        row.copy_from_slice(&b[..out]);
    }
    gemm(batch, inp, out, (x, inp, 1), (w, 1, inp), T::one(), (z, out, 1));
    if relu {
        for v in &mut z[..batch * out] {
            *v = v.max(T::zero());
        }
    }
}

/// `dW = dZᵀ·X` (added when `accumulate`). `dz: [B, OUT]`, `x: [B, IN]`, `dw: [OUT, IN]`.
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
    let beta = if accumulate { T::one() } else { T::zero() };
    gemm(out, batch, inp, (dz, 1, out), (x, inp, 1), beta, (dw, inp, 1));
}

/// `db = Σ_rows dZ` (added when `accumulate`), row by row into `db` so the rows stream
/// through the cache: the sum of each `db[o]` starts from `db[o]` (or 0) instead of
/// from 0 as in `ops`. `dz: [B, OUT]`, `db: [OUT]`.
pub fn fc_backward_bias<T: Real>(dz: &[T], db: &mut [T], batch: usize, out: usize, accumulate: bool) {
    if !accumulate {
        db[..out].fill(T::zero());
    }
    for row in dz[..batch * out].chunks_exact(out) {
        for (d, &g) in db.iter_mut().zip(row) {
            *d = *d + g;
        }
    }
}

/// `dX = dZ·W`, optionally `⊙ [a_prev > 0]`. `dz: [B, OUT]`, `w: [OUT, IN]`, `dx: [B, IN]`.
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
    gemm(batch, out, inp, (dz, out, 1), (w, inp, 1), T::zero(), (dx, inp, 1));
    if let Some(a) = a_prev {
        for (d, &a) in dx[..batch * inp].iter_mut().zip(a) {
            if a <= T::zero() {
                *d = T::zero();
            }
        }
    }
}
