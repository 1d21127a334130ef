//! The parity checks of the layer-sequence ops: convolution, max-pooling and dropout,
//! with the bounds of the module above (`K = C_in·k·k` products per forward output, at
//! most `C_out·k·k` per input gradient, `B·H_out·W_out` per weight or bias gradient;
//! pooling and dropout exact).

use super::{abs, compare, dot_bound, uniform, wide, Outcome};
use crate::cpu::conv::{self, Conv2dShape, Pool2dShape};
use crate::cpu::dropout;
use crate::data::augment::Augment;
use crate::error::Result;
use crate::gpu::conv_ops as gconv;
use crate::gpu::Gpu;
use crate::rng::Rng;

/// One convolution case, `(B, C_in, H, W, C_out, k, stride, pad)`.
pub type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize);

/// Convolution shapes the parity suite covers, `(B, C_in, H, W, C_out, k, stride, pad)`:
/// every value of channels 1, 3, 5, sizes 1, 7, 28, kernel 1, 3, 5, padding 0, 1, 2, stride
/// 1, 2 and batch 1, 7, 128, ragged channel and position blocks, stride 2 with padding, and
/// a kernel as large as the padded input.
pub const CONV_CASES: [ConvCase; 13] = [
    (1, 1, 1, 1, 1, 1, 1, 0),
    (7, 3, 7, 7, 5, 3, 1, 1),
    (7, 5, 7, 7, 3, 5, 2, 2),
    (128, 1, 28, 28, 5, 3, 1, 1),
    (1, 3, 28, 28, 3, 5, 2, 0),
    (7, 5, 1, 1, 1, 3, 1, 1),
    (1, 1, 7, 28, 3, 1, 2, 2),
    (7, 3, 28, 7, 5, 5, 2, 1),
    (1, 5, 7, 7, 5, 3, 2, 0),
    (7, 1, 1, 7, 3, 3, 1, 1),
    (1, 3, 1, 1, 1, 5, 1, 2),
    (128, 5, 7, 7, 5, 3, 2, 1),
    (7, 5, 28, 28, 5, 5, 1, 2),
];

/// Max-pooling shapes, `(B, C, H, W, k)`: odd sizes (dropped rows and columns), a window
/// of 1, a window as large as the input, batch 1, 7, 128.
pub const POOL_CASES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 1, 1, 1, 1),
    (7, 3, 7, 7, 2),
    (128, 5, 28, 28, 2),
    (7, 5, 28, 7, 3),
    (1, 3, 7, 28, 5),
    (7, 1, 7, 7, 7),
    (1, 5, 1, 7, 1),
];

/// Dropout cases, `(B, width, p)`, `p = 0` keeping everything.
pub const DROPOUT_CASES: [(usize, usize, f32); 6] =
    [(1, 1, 0.5), (7, 3, 0.0), (7, 784, 0.5), (128, 980, 0.25), (128, 17, 0.9), (1, 70_001, 0.1)];

/// The checked shape of a [`CONV_CASES`] entry.
pub fn conv_shape(case: ConvCase) -> Result<Conv2dShape> {
    let (b, ci, h, w, co, k, s, p) = case;
    Conv2dShape::new(b, ci, h, w, co, k, s, p)
}

/// The checked shape of a [`POOL_CASES`] entry.
pub fn pool_shape(case: (usize, usize, usize, usize, usize)) -> Result<Pool2dShape> {
    let (b, c, h, w, k) = case;
    Pool2dShape::new(b, c, h, w, k)
}

/// `conv2d_forward` on random `x`, `w`, `b`; `K = C_in·k·k` products per output.
pub fn conv2d_forward(gpu: &Gpu, s: &Conv2dShape, relu: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 20);
    let x = uniform(&mut rng, s.batch * s.in_len(), 1.0);
    let w = uniform(&mut rng, s.weight_len(), 1.0);
    let b = uniform(&mut rng, s.c_out, 1.0);
    let g = gconv::conv2d_forward(gpu, &x, &w, &b, s, relu)?;
    let mut r = vec![0.0; s.batch * s.out_len()];
    conv::conv2d_forward(&wide(&x), &wide(&w), &wide(&b), &mut r, s, relu);
    let mut mag = vec![0.0; r.len()];
    conv::conv2d_forward(&abs(&x), &abs(&w), &abs(&b), &mut mag, s, false);
    let shape = format!("{s}{}", if relu { " relu" } else { "" });
    Ok(compare("conv2d_forward", shape, &wide(&g), &r, &dot_bound(&mag, s.c_in * s.k * s.k)))
}

/// `conv2d_backward_input` on random `dz`, `w` (and a ReLU mask from a random `a_prev`,
/// about half of it zero, when `mask`); at most `C_out·k·k` products per input.
pub fn conv2d_backward_input(gpu: &Gpu, s: &Conv2dShape, mask: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 21);
    let dz = uniform(&mut rng, s.batch * s.out_len(), 1.0);
    let w = uniform(&mut rng, s.weight_len(), 1.0);
    let a: Vec<f32> = uniform(&mut rng, s.batch * s.in_len(), 1.0).iter().map(|v| v.max(0.0)).collect();
    let g = gconv::conv2d_backward_input(gpu, &dz, &w, mask.then_some(&a[..]), s)?;
    let mut r = vec![0.0; s.batch * s.in_len()];
    let a64 = wide(&a);
    conv::conv2d_backward_input(&wide(&dz), &wide(&w), mask.then_some(&a64[..]), &mut r, s);
    let mut mag = vec![0.0; r.len()];
    conv::conv2d_backward_input(&abs(&dz), &abs(&w), None, &mut mag, s);
    let shape = format!("{s}{}", if mask { " mask" } else { "" });
    Ok(compare("conv2d_backward_input", shape, &wide(&g), &r, &dot_bound(&mag, s.c_out * s.k * s.k)))
}

/// `conv2d_backward_weights` on random `dz`, `x` (and prior gradients when
/// `accumulate`); `K = B·H_out·W_out` products per weight.
pub fn conv2d_backward_weights(gpu: &Gpu, s: &Conv2dShape, accumulate: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 22);
    let dz = uniform(&mut rng, s.batch * s.out_len(), 1.0);
    let x = uniform(&mut rng, s.batch * s.in_len(), 1.0);
    let dw0 = uniform(&mut rng, s.weight_len(), 1.0);
    let g = gconv::conv2d_backward_weights(gpu, &dz, &x, &dw0, s, accumulate)?;
    let mut r = wide(&dw0);
    conv::conv2d_backward_weights(&wide(&dz), &wide(&x), &mut r, s, accumulate);
    let mut mag = abs(&dw0);
    conv::conv2d_backward_weights(&abs(&dz), &abs(&x), &mut mag, s, accumulate);
    let shape = format!("{s}{}", if accumulate { " accumulate" } else { "" });
    Ok(compare("conv2d_backward_weights", shape, &wide(&g), &r, &dot_bound(&mag, s.batch * s.h_out * s.w_out)))
}

/// The four `conv_im2col.wgsl` kernels on random data against their `f32` CPU twins,
/// exactly: three copies, and `conv_col2im`'s sum in the twin's order (`mask`: a ReLU
/// mask from a random `a_prev`, about half of it zero).
pub fn conv_im2col_kernels(gpu: &Gpu, s: &Conv2dShape, mask: bool, seed: u64) -> Result<Vec<Outcome>> {
    let mut rng = Rng::new(seed, 28);
    let rows = s.batch * s.h_out * s.w_out;
    let cols_len = rows * s.c_in * s.k * s.k;
    let x = uniform(&mut rng, s.batch * s.in_len(), 1.0);
    let dcols = uniform(&mut rng, cols_len, 1.0);
    let a: Vec<f32> = uniform(&mut rng, s.batch * s.in_len(), 1.0).iter().map(|v| v.max(0.0)).collect();
    let z = uniform(&mut rng, s.batch * s.out_len(), 1.0);
    let exact = |op: &str, g: &[f32], r: &[f32], tag: &str| {
        compare(op, format!("{s}{tag}"), &wide(g), &wide(r), &vec![0.0; r.len()])
    };
    let mut r = vec![0.0f32; cols_len];
    conv::conv_im2col(&x, &mut r, s);
    let mut out = vec![exact("conv_im2col", &gconv::conv_im2col(gpu, &x, s)?, &r, "")];
    let mut r = vec![0.0f32; s.batch * s.in_len()];
    conv::conv_col2im(&dcols, mask.then_some(&a[..]), &mut r, s);
    let g = gconv::conv_col2im(gpu, &dcols, mask.then_some(&a[..]), s)?;
    out.push(exact("conv_col2im", &g, &r, if mask { " mask" } else { "" }));
    let mut r = vec![0.0f32; z.len()];
    conv::conv_rows_to_nchw(&z, &mut r, s);
    out.push(exact("conv_rows_to_nchw", &gconv::conv_rows_to_nchw(gpu, &z, s)?, &r, ""));
    conv::conv_nchw_to_rows(&z, &mut r, s);
    out.push(exact("conv_nchw_to_rows", &gconv::conv_nchw_to_rows(gpu, &z, s)?, &r, ""));
    Ok(out)
}

/// The whole im2col path of a convolution (`gpu::conv_ops::conv2d_im2col`: patches, the
/// three GEMMs, the layout changes, col2im) against `cpu::conv`'s `conv2d_forward`,
/// `conv2d_backward_weights` and `conv2d_backward_input` in `f64`, with their bounds
/// (the input gradient sums `C_out` products in the GEMM, then `k·k` of those in col2im).
/// `on` switches the fused ReLU, the accumulation and the mask together.
pub fn conv2d_im2col(gpu: &Gpu, s: &Conv2dShape, on: bool, seed: u64) -> Result<Vec<Outcome>> {
    let mut rng = Rng::new(seed, 29);
    let x = uniform(&mut rng, s.batch * s.in_len(), 1.0);
    let w = uniform(&mut rng, s.weight_len(), 1.0);
    let b = uniform(&mut rng, s.c_out, 1.0);
    let dz = uniform(&mut rng, s.batch * s.out_len(), 1.0);
    let dw0 = uniform(&mut rng, s.weight_len(), 1.0);
    let a: Vec<f32> = uniform(&mut rng, s.batch * s.in_len(), 1.0).iter().map(|v| v.max(0.0)).collect();
    let (z, dw, dx) = gconv::conv2d_im2col(gpu, &x, &w, &b, &dz, &dw0, on.then_some(&a[..]), s, on, on)?;
    let (x64, w64, dz64, a64) = (wide(&x), wide(&w), wide(&dz), wide(&a));
    let tag = if on { " relu accumulate mask" } else { "" };
    let mut r = vec![0.0; z.len()];
    conv::conv2d_forward(&x64, &w64, &wide(&b), &mut r, s, on);
    let mut mag = vec![0.0; z.len()];
    conv::conv2d_forward(&abs(&x), &abs(&w), &abs(&b), &mut mag, s, false);
    let k2 = s.k * s.k;
    let mut out =
        vec![compare("conv2d_im2col forward", format!("{s}{tag}"), &wide(&z), &r, &dot_bound(&mag, s.c_in * k2))];
    let mut r = if on { wide(&dw0) } else { vec![0.0; dw.len()] };
    conv::conv2d_backward_weights(&dz64, &x64, &mut r, s, on);
    let mut mag = if on { abs(&dw0) } else { vec![0.0; dw.len()] };
    conv::conv2d_backward_weights(&abs(&dz), &abs(&x), &mut mag, s, on);
    let bound = dot_bound(&mag, s.batch * s.h_out * s.w_out);
    out.push(compare("conv2d_im2col backward_weights", format!("{s}{tag}"), &wide(&dw), &r, &bound));
    let mut r = vec![0.0; dx.len()];
    conv::conv2d_backward_input(&dz64, &w64, on.then_some(&a64[..]), &mut r, s);
    let mut mag = vec![0.0; dx.len()];
    conv::conv2d_backward_input(&abs(&dz), &abs(&w), None, &mut mag, s);
    let bound = dot_bound(&mag, s.c_out + k2);
    out.push(compare("conv2d_im2col backward_input", format!("{s}{tag}"), &wide(&dx), &r, &bound));
    Ok(out)
}

/// `conv2d_backward_bias` on random `dz` (and prior gradients when `accumulate`);
/// `K = B·H_out·W_out` terms per bias.
pub fn conv2d_backward_bias(gpu: &Gpu, s: &Conv2dShape, accumulate: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 23);
    let dz = uniform(&mut rng, s.batch * s.out_len(), 1.0);
    let db0 = uniform(&mut rng, s.c_out, 1.0);
    let g = gconv::conv2d_backward_bias(gpu, &dz, &db0, s, accumulate)?;
    let mut r = wide(&db0);
    conv::conv2d_backward_bias(&wide(&dz), &mut r, s, accumulate);
    let mut mag = abs(&db0);
    conv::conv2d_backward_bias(&abs(&dz), &mut mag, s, accumulate);
    let shape = format!("{s}{}", if accumulate { " accumulate" } else { "" });
    Ok(compare("conv2d_backward_bias", shape, &wide(&g), &r, &dot_bound(&mag, s.batch * s.h_out * s.w_out)))
}

/// Pooling inputs: uniform, or (`ties`) drawn from {−1, 0, ½, 1} so that most windows
/// hold equal maxima and the first-maximum rule decides the argmax.
fn pool_input(rng: &mut Rng, len: usize, ties: bool) -> Vec<f32> {
    if ties {
        (0..len).map(|_| [-1.0, 0.0, 0.5, 1.0][rng.below(4) as usize]).collect()
    } else {
        uniform(rng, len, 1.0)
    }
}

fn as_f64(v: &[u32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// `maxpool2d_forward` (exact): the output and the argmax comparisons.
pub fn maxpool2d_forward(gpu: &Gpu, s: &Pool2dShape, ties: bool, seed: u64) -> Result<[Outcome; 2]> {
    let mut rng = Rng::new(seed, 24);
    let x = pool_input(&mut rng, s.batch * s.in_len(), ties);
    let (gy, garg) = gconv::maxpool2d_forward(gpu, &x, s)?;
    let len = s.batch * s.out_len();
    let (mut ry, mut rarg) = (vec![0.0; len], vec![0u32; len]);
    conv::maxpool2d_forward(&wide(&x), &mut ry, &mut rarg, s);
    let shape = format!("{s}{}", if ties { " ties" } else { "" });
    let zero = vec![0.0; len];
    Ok([
        compare("maxpool2d_forward y", shape.clone(), &wide(&gy), &ry, &zero),
        compare("maxpool2d_forward argmax", shape, &as_f64(&garg), &as_f64(&rarg), &zero),
    ])
}

/// `maxpool2d_backward` (exact) on random `dy` and the argmax of a random forward.
pub fn maxpool2d_backward(gpu: &Gpu, s: &Pool2dShape, ties: bool, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 25);
    let x = pool_input(&mut rng, s.batch * s.in_len(), ties);
    let len = s.batch * s.out_len();
    let dy = uniform(&mut rng, len, 1.0);
    let (mut y, mut arg) = (vec![0.0f32; len], vec![0u32; len]);
    conv::maxpool2d_forward(&x, &mut y, &mut arg, s);
    let g = gconv::maxpool2d_backward(gpu, &dy, &arg, s)?;
    let mut r = vec![0.0; s.batch * s.in_len()];
    conv::maxpool2d_backward(&wide(&dy), &arg, &mut r, s);
    let shape = format!("{s}{}", if ties { " ties" } else { "" });
    Ok(compare("maxpool2d_backward", shape, &wide(&g), &r, &vec![0.0; r.len()]))
}

/// Random dataset indices for `batch` rows, and the seed and epoch of one draw.
fn dropout_keys(rng: &mut Rng, batch: usize) -> (Vec<u32>, u64, u32) {
    let samples = (0..batch).map(|_| rng.below(60_000) as u32).collect();
    (samples, rng.next_u64(), rng.below(100) as u32)
}

/// `dropout_forward` (exact: the `f64` twin's product of two `f32` values is exact, and
/// rounding it to `f32` gives the correctly rounded product WGSL computes).
pub fn dropout_forward(gpu: &Gpu, batch: usize, width: usize, p: f32, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 26);
    let x = uniform(&mut rng, batch * width, 1.0);
    let (samples, dseed, epoch) = dropout_keys(&mut rng, batch);
    let g = gconv::dropout_forward(gpu, &x, &samples, width, dseed, epoch, p)?;
    let mut r = vec![0.0; batch * width];
    dropout::dropout_forward(&wide(&x), &mut r, &samples, width, dseed, epoch, p);
    let r: Vec<f64> = r.iter().map(|&v| f64::from(v as f32)).collect();
    Ok(compare("dropout_forward", format!("B={batch} D={width} p={p}"), &wide(&g), &r, &vec![0.0; r.len()]))
}

/// `dropout_backward` (exact, as [`dropout_forward`]).
pub fn dropout_backward(gpu: &Gpu, batch: usize, width: usize, p: f32, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 27);
    let dy = uniform(&mut rng, batch * width, 1.0);
    let (samples, dseed, epoch) = dropout_keys(&mut rng, batch);
    let g = gconv::dropout_backward(gpu, &dy, &samples, width, dseed, epoch, p)?;
    let mut r = vec![0.0; batch * width];
    dropout::dropout_backward(&wide(&dy), &mut r, &samples, width, dseed, epoch, p);
    let r: Vec<f64> = r.iter().map(|&v| f64::from(v as f32)).collect();
    Ok(compare("dropout_backward", format!("B={batch} D={width} p={p}"), &wide(&g), &r, &vec![0.0; r.len()]))
}

/// Augmentation cases, `(B, [C, H, W], flip, shift)`.
pub const AUGMENT_CASES: [(usize, [usize; 3], bool, u32); 4] =
    [(1, [1, 1, 1], true, 1), (7, [3, 7, 5], true, 2), (128, [1, 28, 28], true, 2), (7, [5, 2, 9], false, 3)];

/// `augment` (exact: a copy of values or a zero).
pub fn augment(gpu: &Gpu, batch: usize, shape: [usize; 3], a: Augment, seed: u64) -> Result<Outcome> {
    let mut rng = Rng::new(seed, 28);
    let x = uniform(&mut rng, batch * shape.iter().product::<usize>(), 1.0);
    let (samples, dseed, epoch) = dropout_keys(&mut rng, batch);
    let dims = (shape[0], shape[1], shape[2]);
    let g = gconv::augment(gpu, &x, &samples, dims, dseed, epoch, &a)?;
    let mut r = vec![0.0; x.len()];
    crate::data::augment::augment(&x, &mut r, &samples, dims, dseed, epoch, &a);
    Ok(compare("augment", format!("B={batch} {shape:?} {a}"), &wide(&g), &wide(&r), &vec![0.0; r.len()]))
}

/// Every convolution, pooling, dropout and augmentation case, the fused options alternating.
pub(super) fn all(gpu: &Gpu, next: &mut impl FnMut() -> u64) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for (i, &case) in CONV_CASES.iter().enumerate() {
        let s = conv_shape(case)?;
        let on = i % 2 == 0;
        out.push(conv2d_forward(gpu, &s, on, next())?);
        out.push(conv2d_backward_input(gpu, &s, !on, next())?);
        out.push(conv2d_backward_weights(gpu, &s, on, next())?);
        out.push(conv2d_backward_bias(gpu, &s, !on, next())?);
        out.extend(conv_im2col_kernels(gpu, &s, on, next())?);
        out.extend(conv2d_im2col(gpu, &s, !on, next())?);
    }
    for (i, &case) in POOL_CASES.iter().enumerate() {
        let s = pool_shape(case)?;
        out.extend(maxpool2d_forward(gpu, &s, i % 2 == 1, next())?);
        out.push(maxpool2d_backward(gpu, &s, i % 2 == 1, next())?);
    }
    for &(b, w, p) in &DROPOUT_CASES {
        out.push(dropout_forward(gpu, b, w, p, next())?);
        out.push(dropout_backward(gpu, b, w, p, next())?);
    }
    for &(b, shape, flip, shift) in &AUGMENT_CASES {
        out.push(augment(gpu, b, shape, Augment { flip, shift }, next())?);
    }
    Ok(out)
}
