//! The convolution, pooling and dropout twins themselves (CPU only): a gradient check in
//! f64 of a tiny CNN built from the twins, the lecture's explicit Jacobians against the
//! backward ops, the im2col + GEMM path against the plain loops, the shape errors, and
//! the dropout hash's statistics and batch independence.

mod conv_common;
use conv_common::*;
use wgtrain::cpu::conv::{self, Conv2dShape, Pool2dShape};
use wgtrain::cpu::{dropout, fast_conv, ops};
use wgtrain::rng::{self, Rng};
use wgtrain::verify;

/// A tiny CNN: conv (ReLU fused) → maxpool → flatten → fully connected → softmax
/// cross-entropy, its parameters flat as `[conv w, conv b, fc W, fc b]`.
struct Cnn {
    conv: Conv2dShape,
    pool: Pool2dShape,
    classes: usize,
}

impl Cnn {
    fn features(&self) -> usize {
        self.pool.out_len()
    }

    fn param_len(&self) -> usize {
        self.conv.weight_len() + self.conv.c_out + self.classes * self.features() + self.classes
    }

    /// The mean loss over the batch, and its gradients with respect to the parameters and
    /// to the input `x`, by backprop through the twins.
    fn loss_and_grads(&self, params: &[f64], x: &[f64], y: &[u32]) -> (f64, Vec<f64>, Vec<f64>) {
        let (c, p, b) = (&self.conv, &self.pool, self.conv.batch);
        let (f, k) = (self.features(), self.classes);
        let (wl, bl) = (c.weight_len(), c.c_out);
        let (w, rest) = params.split_at(wl);
        let (cb, rest) = rest.split_at(bl);
        let (fw, fb) = rest.split_at(k * f);
        let mut a1 = vec![0.0; b * c.out_len()];
        conv::conv2d_forward(x, w, cb, &mut a1, c, true);
        let (mut pooled, mut arg) = (vec![0.0; b * f], vec![0u32; b * f]);
        conv::maxpool2d_forward(&a1, &mut pooled, &mut arg, p);
        let mut logits = vec![0.0; b * k];
        ops::fc_forward(&pooled, fw, fb, &mut logits, b, f, k, false);
        let scale = 1.0 / b as f64;
        let (mut loss, mut correct, mut dlogits) = (vec![0.0; b], vec![0; b], vec![0.0; b * k]);
        ops::softmax_xent(&logits, y, scale, &mut loss, &mut correct, &mut dlogits, b, k);
        let risk = loss.iter().sum::<f64>() * scale;
        let mut grads = vec![0.0; params.len()];
        let (gw, rest) = grads.split_at_mut(wl);
        let (gcb, rest) = rest.split_at_mut(bl);
        let (gfw, gfb) = rest.split_at_mut(k * f);
        ops::fc_backward_weights(&dlogits, &pooled, gfw, b, f, k, false);
        ops::fc_backward_bias(&dlogits, gfb, b, k, false);
        let mut dpooled = vec![0.0; b * f];
        ops::fc_backward_input(&dlogits, fw, None, &mut dpooled, b, f, k);
        let mut da1 = vec![0.0; a1.len()];
        conv::maxpool2d_backward(&dpooled, &arg, &mut da1, p);
        let mut dz1 = vec![0.0; a1.len()];
        ops::relu_backward(&da1, &a1, &mut dz1); // a = max(z, 0) > 0 exactly when z > 0
        conv::conv2d_backward_weights(&dz1, x, gw, c, false);
        conv::conv2d_backward_bias(&dz1, gcb, c, false);
        let mut dx = vec![0.0; x.len()];
        conv::conv2d_backward_input(&dz1, w, None, &mut dx, c);
        (risk, grads, dx)
    }
}

/// Central differences of the mean loss against backprop, for every parameter and every
/// input value. Bound `1e-6·(1 + |g|)` as in `verify::gradcheck` (h = 1e-5: truncation
/// `O(h²)`, rounding `≈ ε₆₄/h`); a ReLU kink or a pooling switch within `h` would break it,
/// and the seeded data has none.
#[test]
fn tiny_cnn_backprop_matches_finite_differences() {
    let cases = [
        // B, C_in, H, W, C_out, k, stride, pad; pool window; classes
        ((2, 2, 6, 6, 3, 3, 1, 1), 2, 3),
        ((2, 1, 7, 7, 2, 3, 2, 1), 2, 3),
        ((1, 3, 5, 5, 2, 2, 1, 0), 3, 4),
    ];
    for (seed, &(cs, pk, classes)) in cases.iter().enumerate() {
        let conv = verify::conv::conv_shape(cs).unwrap();
        let pool = Pool2dShape::new(conv.batch, conv.c_out, conv.h_out, conv.w_out, pk).unwrap();
        let net = Cnn { conv, pool, classes };
        let mut rng = Rng::new(seed as u64, 40);
        let params: Vec<f64> = values(&mut rng, net.param_len()).iter().map(|v| 0.5 * v).collect();
        let x = values(&mut rng, conv.batch * conv.in_len());
        let y: Vec<u32> = (0..conv.batch).map(|_| rng.below(classes as u64) as u32).collect();
        let (_, grads, dx) = net.loss_and_grads(&params, &x, &y);
        let h = 1e-5;
        let fd = |f: &dyn Fn(usize, f64) -> f64, n: usize| -> Vec<f64> {
            (0..n).map(|i| (f(i, h) - f(i, -h)) / (2.0 * h)).collect()
        };
        let by_param = fd(
            &|i, d| {
                let mut p = params.clone();
                p[i] += d;
                net.loss_and_grads(&p, &x, &y).0
            },
            params.len(),
        );
        let by_input = fd(
            &|i, d| {
                let mut xx = x.clone();
                xx[i] += d;
                net.loss_and_grads(&params, &xx, &y).0
            },
            x.len(),
        );
        let bound = |g: &[f64]| g.iter().map(|g| 1e-6 * (1.0 + g.abs())).collect::<Vec<_>>();
        let wl = conv.weight_len();
        let checks = [
            ("d/dw (conv)", &grads[..wl], &by_param[..wl]),
            ("d/db (conv)", &grads[wl..wl + conv.c_out], &by_param[wl..wl + conv.c_out]),
            ("d/d(fc W, b)", &grads[wl + conv.c_out..], &by_param[wl + conv.c_out..]),
            ("d/dx", &dx[..], &by_input[..]),
        ];
        for (what, g, f) in checks {
            let o = verify::compare(&format!("cnn gradcheck {what}"), format!("{conv}"), g, f, &bound(f));
            assert!(o.pass, "{}", o.report());
            assert!(g.iter().any(|&v| v != 0.0), "{what}: an all-zero gradient checks nothing");
        }
    }
}

#[test]
fn conv_jacobian_matrices_reproduce_the_forward() {
    // The explicit J is only evidence if it is the forward's: z = J_x·x + b = J_w·[w; b].
    let mut rng = Rng::new(1, 41);
    for s in jacobian_shapes() {
        let (x, w, b) = (values(&mut rng, s.in_len()), values(&mut rng, s.weight_len()), values(&mut rng, s.c_out));
        let mut z = vec![0.0; s.out_len()];
        conv::conv2d_forward(&x, &w, &b, &mut z, &s, false);
        let plane = s.h_out * s.w_out;
        let jx: Vec<f64> =
            apply(&conv_jacobian_x(&s, &w), &x).iter().enumerate().map(|(i, v)| v + b[i / plane]).collect();
        assert!(close(&jx, &z, 1e-14), "{s}: J_x·x + b ≠ conv2d_forward");
        let jw = apply(&conv_jacobian_w(&s, &x), &[w.clone(), b.clone()].concat());
        assert!(close(&jw, &z, 1e-14), "{s}: J_w·[w; b] ≠ conv2d_forward");
    }
}

#[test]
fn conv_backward_ops_equal_vjp_on_cpu() {
    let mut rng = Rng::new(2, 42);
    for s in jacobian_shapes() {
        let (x, w, v) = (values(&mut rng, s.in_len()), values(&mut rng, s.weight_len()), values(&mut rng, s.out_len()));
        let mut dx = vec![0.0; s.in_len()];
        conv::conv2d_backward_input(&v, &w, None, &mut dx, &s);
        let want = vjp(&v, &conv_jacobian_x(&s, &w));
        assert!(close(&dx, &want, 1e-14), "{s}: conv2d_backward_input {dx:?} vs vᵀ∂z/∂x {want:?}");
        let (mut dw, mut db) = (vec![0.0; s.weight_len()], vec![0.0; s.c_out]);
        conv::conv2d_backward_weights(&v, &x, &mut dw, &s, false);
        conv::conv2d_backward_bias(&v, &mut db, &s, false);
        let got = [dw, db].concat();
        let want = vjp(&v, &conv_jacobian_w(&s, &x));
        assert!(close(&got, &want, 1e-14), "{s}: [dw; db] {got:?} vs vᵀ∂z/∂(w,b) {want:?}");
    }
}

#[test]
fn maxpool_backward_equals_vjp_of_the_selection_matrix_on_cpu() {
    let mut rng = Rng::new(3, 43);
    let (s, x) = pool_tie_case(&mut rng);
    let v = values(&mut rng, s.out_len());
    let (mut y, mut arg) = (vec![0.0; s.out_len()], vec![0u32; s.out_len()]);
    conv::maxpool2d_forward(&x, &mut y, &mut arg, &s);
    let j = pool_jacobian(&s, &x);
    assert_eq!(y, apply(&j, &x), "the pooled values are J·x");
    let mut dx = vec![0.0; s.in_len()];
    conv::maxpool2d_backward(&v, &arg, &mut dx, &s);
    assert_eq!(dx, vjp(&v, &j), "maxpool2d_backward ≠ vᵀJ (ties must go to the first maximum)");
}

#[test]
fn maxpool_ties_go_to_the_first_maximum_and_nan_propagates() {
    let s = Pool2dShape::new(1, 1, 2, 4, 2).unwrap();
    // Window 0: all equal → index 0. Window 1: 3 at (0, 3) and (1, 2) → the first, 3.
    let x = [2.0, 2.0, 1.0, 3.0, 2.0, 2.0, 3.0, 0.0];
    let (mut y, mut arg) = (vec![0.0; 2], vec![0u32; 2]);
    conv::maxpool2d_forward(&x, &mut y, &mut arg, &s);
    assert_eq!((y.clone(), arg.clone()), (vec![2.0, 3.0], vec![0, 3]));
    let nan = [1.0, f64::NAN, 5.0, 1.0, 7.0, 2.0, f64::NAN, f64::NAN];
    conv::maxpool2d_forward(&nan, &mut y, &mut arg, &s);
    assert!(y[0].is_nan() && y[1].is_nan(), "{y:?}");
    assert_eq!(arg, vec![1, 6], "the first NaN in window order");
}

#[test]
fn shapes_follow_pytorch_and_reject_oversized_kernels() {
    let s = Conv2dShape::new(2, 1, 28, 28, 32, 3, 1, 1).unwrap();
    assert_eq!((s.h_out, s.w_out), (28, 28));
    let s = Conv2dShape::new(1, 1, 7, 8, 1, 3, 2, 1).unwrap();
    assert_eq!((s.h_out, s.w_out), (4, 4), "floor((7 + 2 − 3)/2) + 1, floor((8 + 2 − 3)/2) + 1");
    assert!(Conv2dShape::new(1, 3, 1, 1, 1, 5, 1, 2).is_ok(), "k = H + 2p fits");
    for bad in [
        Conv2dShape::new(1, 3, 1, 1, 1, 5, 1, 1),
        Conv2dShape::new(1, 3, 28, 3, 1, 5, 1, 0),
        Conv2dShape::new(1, 3, 7, 7, 1, 3, 0, 0),
        Conv2dShape::new(1, 0, 7, 7, 1, 3, 1, 0),
    ] {
        assert!(matches!(bad, Err(wgtrain::Error::Shape { .. })), "{bad:?}");
    }
    let p = Pool2dShape::new(1, 1, 7, 5, 2).unwrap();
    assert_eq!((p.h_out, p.w_out), (3, 2), "floor mode");
    assert!(matches!(Pool2dShape::new(1, 1, 7, 2, 3), Err(wgtrain::Error::Shape { .. })));
}

/// im2col + GEMM equals the plain loops (both f64; only the summation order differs). The
/// last case is large enough that every op around the products — im2col, the output's
/// regrouping, col2im — splits across the CPU's threads.
#[test]
fn fast_conv_matches_reference_loops() {
    let mut rng = Rng::new(4, 44);
    for &case in verify::conv::CONV_CASES.iter().chain(&[(16, 3, 28, 28, 16, 3, 1, 1)]) {
        let s = verify::conv::conv_shape(case).unwrap();
        let (x, w, b) =
            (values(&mut rng, s.batch * s.in_len()), values(&mut rng, s.weight_len()), values(&mut rng, s.c_out));
        let dz = values(&mut rng, s.batch * s.out_len());
        let a: Vec<f64> = values(&mut rng, x.len()).iter().map(|v| v.max(0.0)).collect();
        let near = |p: &[f64], q: &[f64], what: &str| {
            assert!(p.iter().zip(q).all(|(p, q)| (p - q).abs() <= 1e-11 * (1.0 + q.abs())), "{what} {s}");
        };
        let (mut z1, mut z2) = (vec![0.0; dz.len()], vec![0.0; dz.len()]);
        conv::conv2d_forward(&x, &w, &b, &mut z1, &s, true);
        fast_conv::conv2d_forward(&x, &w, &b, &mut z2, &s, true);
        near(&z2, &z1, "conv2d_forward");
        for acc in [false, true] {
            let (mut dw1, mut dw2) = (w.clone(), w.clone());
            conv::conv2d_backward_weights(&dz, &x, &mut dw1, &s, acc);
            fast_conv::conv2d_backward_weights(&dz, &x, &mut dw2, &s, acc);
            near(&dw2, &dw1, "conv2d_backward_weights");
            let (mut db1, mut db2) = (b.clone(), b.clone());
            conv::conv2d_backward_bias(&dz, &mut db1, &s, acc);
            fast_conv::conv2d_backward_bias(&dz, &mut db2, &s, acc);
            near(&db2, &db1, "conv2d_backward_bias");
        }
        for mask in [None, Some(&a[..])] {
            let (mut dx1, mut dx2) = (vec![1.0; x.len()], vec![2.0; x.len()]);
            conv::conv2d_backward_input(&dz, &w, mask, &mut dx1, &s);
            fast_conv::conv2d_backward_input(&dz, &w, mask, &mut dx2, &s);
            near(&dx2, &dx1, "conv2d_backward_input");
        }
    }
}

/// The fast pooling equals the plain loops bit for bit — on ragged shapes, on values with
/// ties (few distinct values) and NaNs — and its masked backward equals the plain backward
/// followed by the ReLU mask.
#[test]
fn fast_pooling_matches_reference_loops() {
    let mut rng = Rng::new(5, 45);
    for &case in &verify::conv::POOL_CASES {
        let s = verify::conv::pool_shape(case).unwrap();
        for ties in [false, true] {
            let mut x: Vec<f64> = values(&mut rng, s.batch * s.in_len());
            if ties {
                x.iter_mut().for_each(|v| *v = (*v * 2.0).round().max(0.0));
                if x.len() > 5 {
                    x[5] = f64::NAN;
                }
            }
            let (mut y1, mut y2) = (vec![0.0; s.batch * s.out_len()], vec![0.0; s.batch * s.out_len()]);
            let (mut a1, mut a2) = (vec![0u32; y1.len()], vec![0u32; y1.len()]);
            conv::maxpool2d_forward(&x, &mut y1, &mut a1, &s);
            fast_conv::maxpool2d_forward(&x, &mut y2, &mut a2, &s);
            assert_eq!(a1, a2, "argmax {s}");
            assert!(y1.iter().zip(&y2).all(|(p, q)| p.to_bits() == q.to_bits()), "maxpool2d_forward {s}");
            let dy = values(&mut rng, y1.len());
            for mask in [None, Some(&x[..])] {
                let (mut dx1, mut dx2) = (vec![1.0; x.len()], vec![2.0; x.len()]);
                conv::maxpool2d_backward(&dy, &a1, &mut dx1, &s);
                if let Some(a) = mask {
                    ops::relu_mask(&mut dx1, a);
                }
                fast_conv::maxpool2d_backward(&dy, &a1, mask, &mut dx2, &s);
                assert!(dx1.iter().zip(&dx2).all(|(p, q)| p.to_bits() == q.to_bits()), "maxpool2d_backward {s}");
            }
        }
    }
}

/// Over a million keys the kept fraction is `1 − p` within 6 standard deviations, and the
/// mean of `dropout_forward(1)` is 1 (inverted dropout keeps the expectation) likewise.
#[test]
fn dropout_keeps_one_minus_p_and_preserves_the_mean() {
    let (rows, width) = (1000usize, 1000usize);
    let samples: Vec<u32> = (0..rows as u32).map(|r| r * 7 + 3).collect();
    let ones = vec![1.0f64; rows * width];
    for (i, p) in [0.1f32, 0.25, 0.5, 0.9].into_iter().enumerate() {
        let n = (rows * width) as f64;
        let mut y = vec![0.0; rows * width];
        dropout::dropout_forward(&ones, &mut y, &samples, width, 1234 + i as u64, 3, p);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n;
        let pf = f64::from(p);
        let sd = (pf * (1.0 - pf) / n).sqrt();
        assert!((kept - (1.0 - pf)).abs() < 6.0 * sd, "p={p}: kept {kept}");
        let mean = y.iter().sum::<f64>() / n;
        assert!((mean - 1.0).abs() < 6.0 * sd / (1.0 - pf), "p={p}: mean {mean} (is the 1/(1−p) scale there?)");
    }
    let mut y = vec![0.0; rows * width];
    dropout::dropout_forward(&ones, &mut y, &samples, width, 5, 0, 0.0);
    assert!(y.iter().all(|&v| v == 1.0), "p = 0 keeps every element unchanged");
    assert_eq!(rng::dropout_threshold(0.0), 0);
    assert_eq!(rng::dropout_threshold(0.5), 1 << 31);
}

/// The mask of a sample depends on (seed, epoch, sample, element) only: a batch split in
/// two, or reordered, gives the same rows; another epoch or seed gives other masks.
#[test]
fn dropout_masks_do_not_depend_on_how_a_batch_is_split() {
    let width = 50;
    let samples: Vec<u32> = vec![9, 4, 1_000_000, 0, 77, u32::MAX, 12];
    let x: Vec<f64> = (0..samples.len() * width).map(|i| 1.0 + i as f64).collect();
    let run = |x: &[f64], s: &[u32], seed: u64, epoch: u32| {
        let mut y = vec![0.0; x.len()];
        dropout::dropout_forward(x, &mut y, s, width, seed, epoch, 0.5);
        y
    };
    let whole = run(&x, &samples, 42, 1);
    let split = [run(&x[..3 * width], &samples[..3], 42, 1), run(&x[3 * width..], &samples[3..], 42, 1)].concat();
    assert_eq!(whole, split);
    let (rev_x, rev_s): (Vec<f64>, Vec<u32>) = {
        let rows: Vec<usize> = (0..samples.len()).rev().collect();
        (
            rows.iter().flat_map(|&r| x[r * width..(r + 1) * width].to_vec()).collect(),
            rows.iter().map(|&r| samples[r]).collect(),
        )
    };
    let rev = run(&rev_x, &rev_s, 42, 1);
    for r in 0..samples.len() {
        let back = samples.len() - 1 - r;
        assert_eq!(&rev[back * width..(back + 1) * width], &whole[r * width..(r + 1) * width]);
    }
    assert_ne!(run(&x, &samples, 42, 2), whole, "another epoch, another mask");
    assert_ne!(run(&x, &samples, 42 + (1 << 32), 1), whole, "the seed's high word counts");
}

/// `dropout_backward` is `vᵀJ` for `J = diag(mask / (1 − p))`, the mask from `dropout_keep`.
#[test]
fn dropout_backward_equals_vjp_of_its_diagonal_jacobian() {
    let (width, samples, p) = (9, [3u32, 8], 0.4f32);
    let mut rng = Rng::new(5, 45);
    let v = values(&mut rng, samples.len() * width);
    let scale = f64::from(rng::dropout_scale(p));
    let want: Vec<f64> = (0..v.len())
        .map(|i| if rng::dropout_keep(7, 2, samples[i / width], (i % width) as u32, p) { v[i] * scale } else { 0.0 })
        .collect();
    let mut dx = vec![0.0; v.len()];
    dropout::dropout_backward(&v, &mut dx, &samples, width, 7, 2, p);
    assert_eq!(dx, want);
    assert!(want.contains(&0.0) && want.iter().any(|&g| g != 0.0), "both kept and dropped");
}
