//! The lecture's local Jacobians, written out, and what the backward kernels compute.
//!
//! ```text
//! cargo run --release --example jacobians
//! ```
//!
//! For each layer — a 2×3 fully connected layer, ReLU, softmax + cross-entropy, a tiny
//! convolution and a max-pooling — this builds the local Jacobian as a matrix from the
//! forward definition ([`wgtrain::jacobian`]), picks a vector `v` (the gradient arriving
//! from above), and prints `vᵀJ` next to what the backward ops compute on the CPU
//! (`cpu::ops`, `cpu::conv`) and on the GPU (`gpu::ops`, `gpu::conv_ops`; without an
//! adapter the GPU column is left out). Backpropagation never builds `J`: each backward
//! kernel computes `vᵀJ` directly, and here every one is checked to equal it.
//!
//! Zeros print as `·`, so the structure of each matrix stands out.

use wgtrain::cpu::conv::{self, Conv2dShape, Pool2dShape};
use wgtrain::cpu::ops;
use wgtrain::gpu::{conv_ops, ops as gops, AdapterChoice, Gpu};
use wgtrain::jacobian::{self as jac, close, format_matrix, format_vector, vjp};

/// The backward ops the lecture checks: the library's ([`Ops::LIBRARY`]); the test of this
/// example swaps one for a wrong one and expects [`lecture`] to fail.
#[allow(clippy::type_complexity)]
pub struct Ops {
    pub fc_input: fn(&[f64], &[f64], Option<&[f64]>, &mut [f64], usize, usize, usize),
    pub fc_weights: fn(&[f64], &[f64], &mut [f64], usize, usize, usize, bool),
    pub fc_bias: fn(&[f64], &mut [f64], usize, usize, bool),
    pub relu: fn(&[f64], &[f64], &mut [f64]),
    pub softmax_xent: fn(&[f64], &[u32], f64, &mut [f64], &mut [u32], &mut [f64], usize, usize),
    pub conv_input: fn(&[f64], &[f64], Option<&[f64]>, &mut [f64], &Conv2dShape),
    pub conv_weights: fn(&[f64], &[f64], &mut [f64], &Conv2dShape, bool),
    pub conv_bias: fn(&[f64], &mut [f64], &Conv2dShape, bool),
    pub pool_backward: fn(&[f64], &[u32], &mut [f64], &Pool2dShape),
}

impl Ops {
    pub const LIBRARY: Ops = Ops {
        fc_input: ops::fc_backward_input::<f64>,
        fc_weights: ops::fc_backward_weights::<f64>,
        fc_bias: ops::fc_backward_bias::<f64>,
        relu: ops::relu_backward::<f64>,
        softmax_xent: ops::softmax_xent::<f64>,
        conv_input: conv::conv2d_backward_input::<f64>,
        conv_weights: conv::conv2d_backward_weights::<f64>,
        conv_bias: conv::conv2d_backward_bias::<f64>,
        pool_backward: conv::maxpool2d_backward::<f64>,
    };
}

/// How close the CPU (f64) and the GPU (f32) must come to `vᵀJ`.
const CPU_TOL: f64 = 1e-12;
const GPU_TOL: f64 = 1e-5;

fn main() {
    let gpu = match Gpu::new(&AdapterChoice::any()) {
        Ok(g) => Some(g),
        Err(e) => {
            println!("{e}\nshowing the CPU only\n");
            None
        }
    };
    let mut out = String::new();
    let result = lecture(&Ops::LIBRARY, gpu.as_ref(), &mut out);
    print!("{out}");
    match result {
        Ok(()) => println!("every backward op equals vᵀJ"),
        Err(e) => {
            eprintln!("MISMATCH: {e}");
            std::process::exit(1);
        }
    }
}

/// Prints every section into `out`; `Err` names the first backward op that does not equal
/// `vᵀJ` (on the CPU, or on `gpu` when given).
pub fn lecture(ops: &Ops, gpu: Option<&Gpu>, out: &mut String) -> Result<(), String> {
    if let Some(g) = gpu {
        out.push_str(&format!("GPU: {}\n\n", g.describe()));
    }
    fully_connected(ops, gpu, out)?;
    relu(ops, gpu, out)?;
    softmax_cross_entropy(ops, gpu, out)?;
    convolution(ops, gpu, out)?;
    max_pooling(ops, gpu, out)
}

/// `z = W·x + b` with `d = 3` inputs and `e = 2` outputs.
fn fully_connected(ops: &Ops, gpu: Option<&Gpu>, out: &mut String) -> Result<(), String> {
    let (d, e) = (3, 2);
    let w = [1.0, -2.0, 3.0, 0.0, 2.0, -1.0]; // [e, d] row-major
    let b = [1.0, -1.0];
    let x = [2.0, 1.0, -1.0];
    let v = [1.0, -2.0];
    let mut z = vec![0.0; e];
    ops::fc_forward(&x, &w, &b, &mut z, 1, d, e, false);
    heading(out, "1. Fully connected layer  z = W·x + b   (d = 3 inputs, e = 2 outputs)");
    show_vec(out, "x", &x);
    show_vec(out, "b", &b);
    show_vec(out, "z", &z);
    let jx = jac::fc_jacobian_x(&w, e, d);
    let jw = jac::fc_jacobian_w(&x, e);
    show_mat(out, "∂z/∂x = W", &jx);
    show_mat(out, "∂z/∂w   (w = [vec(W); b], W row-major: xᵀ staggered e times, then I_e)", &jw);
    show_vec(out, "v", &v);

    let mut dx = vec![0.0; d];
    (ops.fc_input)(&v, &w, None, &mut dx, 1, d, e);
    let gpu_dx = gpu.map(|g| gops::fc_backward_input(g, &f32s(&v), &f32s(&w), None, 1, d, e)).transpose();
    compare(out, "vᵀ ∂z/∂x", &vjp(&v, &jx), "fc_backward_input", &dx, gpu_dx.map_err(|e| e.to_string())?)?;

    let (mut dw, mut db) = (vec![0.0; d * e], vec![0.0; e]);
    (ops.fc_weights)(&v, &x, &mut dw, 1, d, e, false);
    (ops.fc_bias)(&v, &mut db, 1, e, false);
    let gpu_dwb = match gpu {
        Some(g) => {
            let dw = gops::fc_backward_weights(g, &f32s(&v), &f32s(&x), &[0.0; 6], 1, d, e, false);
            let db = gops::fc_backward_bias(g, &f32s(&v), &[0.0; 2], 1, e, false);
            Some([dw.map_err(|e| e.to_string())?, db.map_err(|e| e.to_string())?].concat())
        }
        None => None,
    };
    let cpu = [dw, db].concat();
    compare(out, "vᵀ ∂z/∂w", &vjp(&v, &jw), "[fc_backward_weights; fc_backward_bias]", &cpu, gpu_dwb)
}

/// `a = max(z, 0)`, element-wise: a diagonal 0/1 Jacobian.
fn relu(ops: &Ops, gpu: Option<&Gpu>, out: &mut String) -> Result<(), String> {
    let z = [2.0, -1.0, 0.0, 3.0, -0.5];
    let v = [1.0, 2.0, 3.0, 4.0, 5.0];
    heading(out, "2. ReLU  a = max(z, 0)");
    show_vec(out, "z", &z);
    let j = jac::relu_jacobian(&z);
    show_mat(out, "∂a/∂z = diag([z > 0])", &j);
    show_vec(out, "v", &v);
    let mut dz = vec![0.0; z.len()];
    (ops.relu)(&v, &z, &mut dz);
    let g = gpu.map(|g| gops::relu_backward(g, &f32s(&v), &f32s(&z))).transpose().map_err(|e| e.to_string())?;
    compare(out, "vᵀ ∂a/∂z", &vjp(&v, &j), "relu_backward", &dz, g)
}

/// `L = −log softmax(z)_y`: through the softmax Jacobian `diag(p) − p pᵀ`, the gradient
/// is `p − onehot(y)`.
fn softmax_cross_entropy(ops: &Ops, gpu: Option<&Gpu>, out: &mut String) -> Result<(), String> {
    let z = [2.0, 1.0, -1.0, 0.5];
    let y = 1usize;
    let c = z.len();
    let mut p = vec![0.0; c];
    ops::softmax(&z, &mut p, 1, c);
    heading(out, "3. Softmax + cross-entropy  p = softmax(z), L = −log p_y   (y = 1)");
    show_vec(out, "z", &z);
    show_vec(out, "p", &p);
    let j = jac::softmax_jacobian(&p);
    show_mat(out, "∂p/∂z = diag(p) − p pᵀ", &j);
    let v: Vec<f64> = (0..c).map(|k| if k == y { -1.0 / p[y] } else { 0.0 }).collect();
    show_vec(out, "v = ∂L/∂p = −e_y / p_y", &v);
    let onehot: Vec<f64> = (0..c).map(|k| if k == y { 1.0 } else { 0.0 }).collect();
    let p_minus: Vec<f64> = p.iter().zip(&onehot).map(|(a, b)| a - b).collect();
    show_vec(out, "p − onehot(y)", &p_minus);
    let (mut loss, mut correct, mut dz) = (vec![0.0], vec![0], vec![0.0; c]);
    (ops.softmax_xent)(&z, &[y as u32], 1.0, &mut loss, &mut correct, &mut dz, 1, c);
    let g = match gpu {
        Some(g) => Some(gops::softmax_xent(g, &f32s(&z), &[y as u32], 1.0, 1, c).map_err(|e| e.to_string())?.2),
        None => None,
    };
    if !close(&vjp(&v, &j), &p_minus, CPU_TOL) {
        return Err("vᵀ ∂p/∂z differs from p − onehot(y)".into());
    }
    compare(out, "vᵀ ∂p/∂z = ∂L/∂z", &vjp(&v, &j), "softmax_xent's dz", &dz, g)
}

/// One 3×3 input channel, two output channels, 2×2 kernels, stride 1, no padding:
/// `z[co] = b[co] + Σ w[co] ⋆ x`, a 2×2 output per channel.
fn convolution(ops: &Ops, gpu: Option<&Gpu>, out: &mut String) -> Result<(), String> {
    let s = Conv2dShape::new(1, 1, 3, 3, 2, 2, 1, 0).map_err(|e| e.to_string())?;
    let x = [1.0, 2.0, 0.0, -1.0, 3.0, 1.0, 2.0, 0.0, -2.0];
    let w = [1.0, -1.0, 2.0, 0.0, 0.0, 1.0, -1.0, 1.0]; // [C_out, C_in, k, k]
    let b = [0.0, 1.0];
    let v = [1.0, 0.0, -1.0, 2.0, 0.0, 1.0, 1.0, -1.0];
    let mut z = vec![0.0; s.out_len()];
    conv::conv2d_forward(&x, &w, &b, &mut z, &s, false);
    heading(out, "4. Convolution  z = b + conv(x, w)   (1×3×3 input, 2 kernels 2×2, stride 1, no padding)");
    show_mat(out, "x (3×3)", &rows(&x, 3));
    show_mat(out, "w (two 2×2 kernels, one per row)", &rows(&w, 4));
    show_vec(out, "z (2 channels × 2×2, flattened)", &z);
    let jx = jac::conv_jacobian_x(&s, &w);
    let jw = jac::conv_jacobian_w(&s, &x);
    show_mat(out, "∂z/∂x   (banded: each row is a kernel laid along the flattened input, shifted)", &jx);
    show_mat(out, "∂z/∂(w, b)   (each row is an input patch, repeated in its channel's block; then I for b)", &jw);
    show_vec(out, "v", &v);
    let mut dx = vec![0.0; s.in_len()];
    (ops.conv_input)(&v, &w, None, &mut dx, &s);
    let g = gpu.map(|g| conv_ops::conv2d_backward_input(g, &f32s(&v), &f32s(&w), None, &s));
    let g = g.transpose().map_err(|e| e.to_string())?;
    compare(out, "vᵀ ∂z/∂x", &vjp(&v, &jx), "conv2d_backward_input", &dx, g)?;
    let (mut dw, mut db) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
    (ops.conv_weights)(&v, &x, &mut dw, &s, false);
    (ops.conv_bias)(&v, &mut db, &s, false);
    let g = match gpu {
        Some(g) => {
            let dw = conv_ops::conv2d_backward_weights(g, &f32s(&v), &f32s(&x), &vec![0.0; s.weight_len()], &s, false);
            let db = conv_ops::conv2d_backward_bias(g, &f32s(&v), &vec![0.0; s.c_out], &s, false);
            Some([dw.map_err(|e| e.to_string())?, db.map_err(|e| e.to_string())?].concat())
        }
        None => None,
    };
    let cpu = [dw, db].concat();
    compare(out, "vᵀ ∂z/∂(w, b)", &vjp(&v, &jw), "[conv2d_backward_weights; _bias]", &cpu, g)
}

/// 2×2 max-pooling of one 4×4 channel: each output copies its window's largest input,
/// so `∂y/∂x` is a 0/1 selection matrix and the backward op routes `v` to the winners.
fn max_pooling(ops: &Ops, gpu: Option<&Gpu>, out: &mut String) -> Result<(), String> {
    let s = Pool2dShape::new(1, 1, 4, 4, 2).map_err(|e| e.to_string())?;
    let x = [1.0, 5.0, 2.0, 0.0, 3.0, -1.0, 4.0, 6.0, 0.0, 2.0, -3.0, -2.0, 7.0, 1.0, -1.0, -4.0];
    let v = [1.0, 2.0, 3.0, 4.0];
    let (mut y, mut argmax) = (vec![0.0; s.out_len()], vec![0u32; s.out_len()]);
    conv::maxpool2d_forward(&x, &mut y, &mut argmax, &s);
    heading(out, "5. Max-pooling  y = maxpool₂ₓ₂(x)   (one 4×4 channel)");
    show_mat(out, "x (4×4)", &rows(&x, 4));
    show_mat(out, "y (2×2)", &rows(&y, 2));
    let j = jac::pool_jacobian(&s, &x);
    show_mat(out, "∂y/∂x   (a single 1 per row, at the window's maximum)", &j);
    show_vec(out, "v", &v);
    let mut dx = vec![0.0; s.in_len()];
    (ops.pool_backward)(&v, &argmax, &mut dx, &s);
    let g = match gpu {
        Some(g) => {
            let (_, arg) = conv_ops::maxpool2d_forward(g, &f32s(&x), &s).map_err(|e| e.to_string())?;
            Some(conv_ops::maxpool2d_backward(g, &f32s(&v), &arg, &s).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    compare(out, "vᵀ ∂y/∂x", &vjp(&v, &j), "maxpool2d_backward", &dx, g)
}

/// Prints `vᵀJ`, the CPU op's result and the GPU's under it, aligned; `Err` when either
/// differs from `vᵀJ`.
fn compare(
    out: &mut String,
    what: &str,
    expected: &[f64],
    op: &str,
    cpu: &[f64],
    gpu: Option<Vec<f32>>,
) -> Result<(), String> {
    let gpu: Option<Vec<f64>> = gpu.map(|g| g.iter().map(|&v| f64::from(v)).collect());
    let cpu_label = format!("{op} (CPU)");
    let gpu_label = format!("{op} (GPU)");
    let width = [what.chars().count(), cpu_label.chars().count(), gpu_label.chars().count()].into_iter().max();
    let width = width.unwrap_or(0);
    let pad = |s: &str| format!("{s}{}", " ".repeat(width - s.chars().count()));
    out.push_str(&format!("  {} = {}\n", pad(what), format_vector(expected)));
    out.push_str(&format!("  {} = {}\n", pad(&cpu_label), format_vector(cpu)));
    if let Some(g) = &gpu {
        out.push_str(&format!("  {} = {}\n", pad(&gpu_label), format_vector(g)));
    }
    out.push('\n');
    if !close(cpu, expected, CPU_TOL) {
        return Err(format!("{op} on the CPU gives {cpu:?}, vᵀJ is {expected:?}"));
    }
    match gpu {
        Some(g) if !close(&g, expected, GPU_TOL) => Err(format!("{op} on the GPU gives {g:?}, vᵀJ is {expected:?}")),
        _ => Ok(()),
    }
}

fn heading(out: &mut String, title: &str) {
    out.push_str(&format!("{title}\n{}\n", "─".repeat(title.chars().count())));
}

fn show_mat(out: &mut String, name: &str, m: &[Vec<f64>]) {
    out.push_str(&format!("  {name} =\n{}", format_matrix(m, "    ")));
}

fn show_vec(out: &mut String, name: &str, v: &[f64]) {
    out.push_str(&format!("  {name} = {}\n", format_vector(v)));
}

/// `v` cut into rows of `n`.
fn rows(v: &[f64], n: usize) -> Vec<Vec<f64>> {
    v.chunks(n).map(<[f64]>::to_vec).collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}
