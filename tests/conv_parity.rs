//! The convolution, max-pooling and dropout kernels against their CPU twins (f64) over a
//! covering set of ragged shapes (`verify::conv::CONV_CASES`, `POOL_CASES`, `DROPOUT_CASES`),
//! edge cases, the explicit Jacobians on the GPU runners, and the WGSL hash against the
//! Rust one. Bounds and why they hold: `src/verify.rs`.

mod common;
mod conv_common;
use common::{assert_pass, gpu};
use conv_common::*;
use wgtrain::cpu::conv::{Conv2dShape, Pool2dShape};
use wgtrain::gpu::conv_ops as gops;
use wgtrain::rng::{self, Rng};
use wgtrain::verify;
use wgtrain::verify::conv::{CONV_CASES, DROPOUT_CASES, POOL_CASES};

fn conv_shapes() -> impl Iterator<Item = (usize, Conv2dShape)> {
    CONV_CASES.iter().enumerate().map(|(i, &c)| (i, verify::conv::conv_shape(c).unwrap()))
}

#[test]
fn conv2d_forward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = conv_shapes()
        .flat_map(|(i, s)| {
            [false, true].map(|relu| verify::conv::conv2d_forward(gpu, &s, relu, 30 + i as u64).unwrap())
        })
        .collect();
    assert_pass(&out);
}

#[test]
fn conv2d_backward_input_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = conv_shapes()
        .flat_map(|(i, s)| {
            [false, true].map(|m| verify::conv::conv2d_backward_input(gpu, &s, m, 31 + i as u64).unwrap())
        })
        .collect();
    assert_pass(&out);
}

#[test]
fn conv2d_backward_weights_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = conv_shapes()
        .flat_map(|(i, s)| {
            [false, true].map(|a| verify::conv::conv2d_backward_weights(gpu, &s, a, 32 + i as u64).unwrap())
        })
        .collect();
    assert_pass(&out);
}

#[test]
fn conv2d_backward_bias_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = conv_shapes()
        .flat_map(|(i, s)| {
            [false, true].map(|a| verify::conv::conv2d_backward_bias(gpu, &s, a, 33 + i as u64).unwrap())
        })
        .collect();
    assert_pass(&out);
}

/// Every pooling case with uniform inputs and with inputs full of ties (exact: the
/// values, the argmax — the first maximum — and the routed gradient).
#[test]
fn maxpool2d_matches_cpu_with_and_without_ties() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for (i, &case) in POOL_CASES.iter().enumerate() {
        let s = verify::conv::pool_shape(case).unwrap();
        for ties in [false, true] {
            out.extend(verify::conv::maxpool2d_forward(gpu, &s, ties, 34 + i as u64).unwrap());
            out.push(verify::conv::maxpool2d_backward(gpu, &s, ties, 35 + i as u64).unwrap());
        }
    }
    assert_pass(&out);
}

#[test]
fn maxpool2d_ties_go_to_the_first_maximum_and_nan_propagates_on_gpu() {
    let Some(gpu) = gpu() else { return };
    let s = Pool2dShape::new(1, 1, 2, 4, 2).unwrap();
    let (y, arg) = gops::maxpool2d_forward(gpu, &[2.0, 2.0, 1.0, 3.0, 2.0, 2.0, 3.0, 0.0], &s).unwrap();
    assert_eq!((y, arg), (vec![2.0, 3.0], vec![0, 3]));
    let nan = f32::NAN;
    let (y, arg) = gops::maxpool2d_forward(gpu, &[1.0, nan, 5.0, 1.0, 7.0, 2.0, nan, nan], &s).unwrap();
    assert!(y[0].is_nan() && y[1].is_nan(), "{y:?}");
    assert_eq!(arg, vec![1, 6], "the first NaN in window order");
}

/// Exact against the twin rounded to f32: the same keys keep the same elements and the
/// scale is the same f32.
#[test]
fn dropout_matches_cpu_exactly() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for (i, &(b, w, p)) in DROPOUT_CASES.iter().enumerate() {
        out.push(verify::conv::dropout_forward(gpu, b, w, p, 36 + i as u64).unwrap());
        out.push(verify::conv::dropout_backward(gpu, b, w, p, 37 + i as u64).unwrap());
    }
    assert_pass(&out);
}

/// The WGSL hash equals `rng::dropout_hash` bit for bit on 4·3·64·1000 keys, seeds and
/// epochs covering both seed words and the extremes.
#[test]
fn dropout_hash_in_wgsl_equals_rust() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(6, 46);
    let mut samples: Vec<u32> = (0..62).map(|_| rng.next_u64() as u32).collect();
    samples.extend([0, u32::MAX]);
    let width = 1000;
    for seed in [0u64, 1, 0xdead_beef_1234_5678, u64::MAX] {
        for epoch in [0u32, 7, u32::MAX] {
            let g = gops::dropout_hash_bits(gpu, &samples, width, seed, epoch).unwrap();
            for (i, &h) in g.iter().enumerate() {
                let want = rng::dropout_hash(seed, epoch, samples[i / width], (i % width) as u32);
                assert_eq!(h, want, "seed {seed:#x} epoch {epoch} sample {} element {}", samples[i / width], i % width);
            }
        }
    }
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// The GPU runners' backward ops equal `vᵀJ` of the explicit Jacobians (built in f64 from
/// the forward definitions on the f32 inputs; 1e-5 covers f32 sums of at most 27 terms).
#[test]
fn conv_and_pool_backward_ops_equal_vjp_on_gpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::new(7, 47);
    for s in jacobian_shapes() {
        let x = f64s(&f32s(&values(&mut rng, s.in_len())));
        let w = f64s(&f32s(&values(&mut rng, s.weight_len())));
        let v = f64s(&f32s(&values(&mut rng, s.out_len())));
        let dx = gops::conv2d_backward_input(gpu, &f32s(&v), &f32s(&w), None, &s).unwrap();
        assert!(close(&f64s(&dx), &vjp(&v, &conv_jacobian_x(&s, &w)), 1e-5), "{s}: GPU dx {dx:?}");
        let dw = gops::conv2d_backward_weights(gpu, &f32s(&v), &f32s(&x), &vec![0.0; s.weight_len()], &s, false);
        let db = gops::conv2d_backward_bias(gpu, &f32s(&v), &vec![0.0; s.c_out], &s, false);
        let got = f64s(&[dw.unwrap(), db.unwrap()].concat());
        assert!(close(&got, &vjp(&v, &conv_jacobian_w(&s, &x)), 1e-5), "{s}: GPU [dw; db] {got:?}");
    }
    let (s, x) = pool_tie_case(&mut rng);
    let v = f32s(&values(&mut rng, s.out_len()));
    let (_, arg) = gops::maxpool2d_forward(gpu, &f32s(&x), &s).unwrap();
    let dx = gops::maxpool2d_backward(gpu, &v, &arg, &s).unwrap();
    assert_eq!(f64s(&dx), vjp(&f64s(&v), &pool_jacobian(&s, &x)), "GPU maxpool2d_backward ≠ vᵀJ");
}

/// A kernel larger than the padded input is a shape error before anything reaches the
/// GPU (the runners take only a checked `Conv2dShape`), and mis-sized data is one too.
#[test]
fn oversized_kernels_and_wrong_lengths_are_shape_errors() {
    assert!(matches!(Conv2dShape::new(1, 3, 1, 1, 1, 5, 1, 1), Err(wgtrain::Error::Shape { .. })));
    assert!(matches!(Conv2dShape::new(7, 1, 28, 28, 5, 31, 2, 1), Err(wgtrain::Error::Shape { .. })));
    assert!(matches!(Pool2dShape::new(1, 1, 1, 7, 2), Err(wgtrain::Error::Shape { .. })));
    let Some(gpu) = gpu() else { return };
    let s = Conv2dShape::new(1, 1, 3, 3, 1, 3, 1, 0).unwrap();
    let r = gops::conv2d_forward(gpu, &[0.0; 8], &[0.0; 9], &[0.0], &s, false);
    assert!(matches!(r, Err(wgtrain::Error::Shape { .. })), "{r:?}");
}

/// Same inputs, same bits: two runs of every kernel agree exactly.
#[test]
fn conv_kernels_are_deterministic() {
    let Some(gpu) = gpu() else { return };
    let s = verify::conv::conv_shape(CONV_CASES[11]).unwrap();
    let mut rng = Rng::new(8, 48);
    let x = f32s(&values(&mut rng, s.batch * s.in_len()));
    let w = f32s(&values(&mut rng, s.weight_len()));
    let dz = f32s(&values(&mut rng, s.batch * s.out_len()));
    let runs = || {
        let z = gops::conv2d_forward(gpu, &x, &w, &vec![0.5; s.c_out], &s, true).unwrap();
        let dx = gops::conv2d_backward_input(gpu, &dz, &w, Some(&x), &s).unwrap();
        let dw = gops::conv2d_backward_weights(gpu, &dz, &x, &w, &s, true).unwrap();
        let db = gops::conv2d_backward_bias(gpu, &dz, &vec![0.0; s.c_out], &s, false).unwrap();
        [z, dx, dw, db].concat().iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    assert_eq!(runs(), runs());
}

/// A grid past 65,535 workgroups folds into y: `maxpool2d_backward` over 4.3 M inputs
/// (65,535·64 = 4,194,240 invocations fit in x).
#[test]
fn maxpool2d_backward_grid_folds_into_y() {
    let Some(gpu) = gpu() else { return };
    let s = Pool2dShape::new(1, 1, 2048, 2100, 2).unwrap();
    assert!(s.in_len() > 65_535 * 64);
    let out = [verify::conv::maxpool2d_backward(gpu, &s, false, 50).unwrap()];
    assert_pass(&out);
}
