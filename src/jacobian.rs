//! The lecture's explicit local Jacobians, built as dense matrices from the forward
//! definitions (never from the backward ops they are used to check), and `vᵀJ`: the
//! fully connected layer, ReLU, softmax, a convolution and a max-pooling of one sample.
//! Used by `examples/jacobians.rs` and the reference tests.

use crate::cpu::conv::{Conv2dShape, Pool2dShape};

/// A dense matrix as rows.
pub type Matrix = Vec<Vec<f64>>;

/// `∂z/∂x = W: [e, d]` of `z = W·x + b` for one sample, `w: [e, d]` row-major.
pub fn fc_jacobian_x(w: &[f64], e: usize, d: usize) -> Matrix {
    (0..e).map(|o| w[o * d..(o + 1) * d].to_vec()).collect()
}

/// `∂z/∂w: [e, e·d + e]` of `z = W·x + b` for one sample, for the parameter vector
/// `[vec(W); b]` with `W` row-major: row `o` holds `xᵀ` in `W`'s row `o` block (`xᵀ`
/// staggered `e` times), then the identity `I_e` in the bias columns.
pub fn fc_jacobian_w(x: &[f64], e: usize) -> Matrix {
    let d = x.len();
    (0..e)
        .map(|o| {
            let mut row = vec![0.0; e * d + e];
            row[o * d..(o + 1) * d].copy_from_slice(x);
            row[e * d + o] = 1.0;
            row
        })
        .collect()
}

/// `∂a/∂z = diag([z > 0])` of `a = max(z, 0)`.
pub fn relu_jacobian(z: &[f64]) -> Matrix {
    let n = z.len();
    (0..n).map(|r| (0..n).map(|c| if r == c && z[r] > 0.0 { 1.0 } else { 0.0 }).collect()).collect()
}

/// `∂p/∂z = diag(p) − p pᵀ` of `p = softmax(z)`, given `p`.
pub fn softmax_jacobian(p: &[f64]) -> Matrix {
    let n = p.len();
    (0..n).map(|r| (0..n).map(|c| if r == c { p[r] - p[r] * p[c] } else { -p[r] * p[c] }).collect()).collect()
}

/// Every tap of a convolution of one sample: `(row, weight, input)` for output
/// `row = (co, oh, ow)`, weight index `(co, ci, kh, kw)` and the input index
/// `(ci, oh·s−p+kh, ow·s−p+kw)`, `None` where the tap lies in the zero padding.
fn conv_taps(s: &Conv2dShape) -> impl Iterator<Item = (usize, usize, Option<usize>)> + '_ {
    let outputs = (0..s.c_out).flat_map(move |co| (0..s.h_out * s.w_out).map(move |o| (co, o / s.w_out, o % s.w_out)));
    outputs.flat_map(move |(co, oh, ow)| {
        (0..s.c_in * s.k * s.k).map(move |t| {
            let (ci, kh, kw) = (t / (s.k * s.k), t / s.k % s.k, t % s.k);
            let ih = (oh * s.stride + kh) as isize - s.pad as isize;
            let iw = (ow * s.stride + kw) as isize - s.pad as isize;
            let inside = ih >= 0 && iw >= 0 && ih < s.h as isize && iw < s.w as isize;
            let input = inside.then(|| (ci * s.h + ih as usize) * s.w + iw as usize);
            ((co * s.h_out + oh) * s.w_out + ow, co * s.c_in * s.k * s.k + t, input)
        })
    })
}

/// `∂z/∂x: [C_out·H_out·W_out, C_in·H·W]` of `z = b + conv(x, w)` for one sample: row
/// `(co, oh, ow)` holds `w[co, ci, kh, kw]` at column `(ci, oh·s−p+kh, ow·s−p+kw)` for every
/// tap inside the input (a banded, Toeplitz-like matrix: each row is the kernel laid along
/// the flattened input, shifted by the stride from one row to the next).
pub fn conv_jacobian_x(s: &Conv2dShape, w: &[f64]) -> Matrix {
    let mut j = vec![vec![0.0; s.c_in * s.h * s.w]; s.c_out * s.h_out * s.w_out];
    for (row, wi, input) in conv_taps(s) {
        if let Some(col) = input {
            j[row][col] += w[wi];
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
    for (row, wi, input) in conv_taps(s) {
        j[row][wi] = input.map_or(0.0, |i| x[i]);
    }
    for (row, r) in j.iter_mut().enumerate() {
        r[wl + row / (s.h_out * s.w_out)] = 1.0;
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
                let first = *window.iter().find(|&&i| x[i] == max).expect("a window holds its maximum");
                j[(c * s.h_out + oh) * s.w_out + ow][first] = 1.0;
            }
        }
    }
    j
}

/// `J·u`.
pub fn apply(j: &[Vec<f64>], u: &[f64]) -> Vec<f64> {
    j.iter().map(|row| row.iter().zip(u).map(|(a, b)| a * b).sum()).collect()
}

/// `vᵀJ`.
pub fn vjp(v: &[f64], j: &[Vec<f64>]) -> Vec<f64> {
    (0..j[0].len()).map(|c| (0..j.len()).map(|r| v[r] * j[r][c]).sum()).collect()
}

/// Whether `a ≈ b` to `tol` relative to `1 + |b|`, element by element.
pub fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()))
}

/// One value for a matrix printout: an integer without decimals, else up to 3 decimals
/// with trailing zeros dropped; `0` prints as `·` so the structure stands out.
pub fn cell(v: f64) -> String {
    if v == 0.0 {
        return "·".into();
    }
    if v == v.round() && v.abs() < 1e6 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s == "0" {
        format!("{v:.1e}")
    } else {
        s.to_string()
    }
}

/// `m` as aligned text, one row per line, each indented by `indent`.
pub fn format_matrix(m: &[Vec<f64>], indent: &str) -> String {
    let cells: Vec<Vec<String>> = m.iter().map(|r| r.iter().map(|&v| cell(v)).collect()).collect();
    let width = cells.iter().flatten().map(|c| c.chars().count()).max().unwrap_or(1);
    let mut out = String::new();
    for row in &cells {
        out.push_str(indent);
        out.push('[');
        let padded: Vec<String> = row.iter().map(|c| format!("{c:>width$}")).collect();
        out.push_str(&padded.join(" "));
        out.push_str("]\n");
    }
    out
}

/// `v` as one aligned row.
pub fn format_vector(v: &[f64]) -> String {
    let cells: Vec<String> = v.iter().map(|&x| cell(x)).collect();
    let width = cells.iter().map(|c| c.chars().count()).max().unwrap_or(1);
    format!("[{}]", cells.iter().map(|c| format!("{c:>width$}")).collect::<Vec<_>>().join(" "))
}
