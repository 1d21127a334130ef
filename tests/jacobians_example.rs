//! `examples/jacobians.rs`'s checks, run as a test: every backward op equals `vᵀJ` of the
//! lecture's explicit Jacobians (on the GPU too when there is one), and the example fails
//! when any backward op is wrong.

mod common;
#[allow(dead_code)]
#[path = "../examples/jacobians.rs"]
mod example;

use example::{lecture, Ops};

#[test]
fn the_lecture_example_passes_with_the_library_ops() {
    let mut out = String::new();
    let r = lecture(&Ops::LIBRARY, common::gpu(), &mut out);
    assert!(r.is_ok(), "{r:?}\n{out}");
    for what in ["∂z/∂x = W", "∂a/∂z = diag([z > 0])", "∂p/∂z = diag(p) − p pᵀ", "∂z/∂(w, b)", "∂y/∂x"]
    {
        assert!(out.contains(what), "the printout lacks {what}:\n{out}");
    }
}

#[test]
fn the_lecture_example_fails_when_a_backward_op_is_wrong() {
    // Each a plausible bug: the library's op, then one thing wrong.
    let mut wrong: Vec<(&str, Ops)> = Vec::new();
    wrong.push((
        "fc_input uses Wᵀ's layout (reads w[i·e + o])",
        Ops {
            fc_input: |dz, w, _, dx, b, inp, out| {
                for i in 0..inp {
                    dx[i] = (0..out).map(|o| dz[o] * w[(i * out + o) % w.len()]).sum();
                }
                let _ = b;
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push((
        "fc_weights adds to stale gradients",
        Ops {
            fc_weights: |dz, x, dw, b, i, o, _| {
                dw.fill(1.0);
                wgtrain::cpu::ops::fc_backward_weights(dz, x, dw, b, i, o, true);
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push(("fc_bias forgets the bias", Ops { fc_bias: |_, db, _, _, _| db.fill(0.0), ..Ops::LIBRARY }));
    wrong.push((
        "relu passes the gradient at z = 0",
        Ops {
            relu: |da, z, dz| {
                for i in 0..dz.len() {
                    dz[i] = if z[i] >= 0.0 { da[i] } else { 0.0 };
                }
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push((
        "softmax_xent forgets the one-hot",
        Ops {
            softmax_xent: |z, y, s, l, c, dz, b, k| {
                wgtrain::cpu::ops::softmax_xent(z, y, s, l, c, dz, b, k);
                dz[y[0] as usize] += 1.0;
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push((
        "conv_input off by one tap",
        Ops {
            conv_input: |dz, w, a, dx, s| {
                wgtrain::cpu::conv::conv2d_backward_input(dz, w, a, dx, s);
                dx.rotate_left(1);
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push((
        "conv_weights with a flipped kernel",
        Ops {
            conv_weights: |dz, x, dw, s, acc| {
                wgtrain::cpu::conv::conv2d_backward_weights(dz, x, dw, s, acc);
                for k in dw.chunks_mut(s.k * s.k) {
                    k.reverse();
                }
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push((
        "conv_bias averages instead of summing",
        Ops {
            conv_bias: |dz, db, s, acc| {
                wgtrain::cpu::conv::conv2d_backward_bias(dz, db, s, acc);
                let n = (s.h_out * s.w_out) as f64;
                db.iter_mut().for_each(|v| *v /= n);
            },
            ..Ops::LIBRARY
        },
    ));
    wrong.push((
        "pool_backward spreads the gradient over the window",
        Ops {
            pool_backward: |dy, _, dx, s| {
                dx.fill(0.0);
                for (o, &g) in dy.iter().enumerate() {
                    let (oh, ow) = (o / s.w_out, o % s.w_out);
                    for t in 0..s.k * s.k {
                        dx[(oh * s.k + t / s.k) * s.w + ow * s.k + t % s.k] += g / (s.k * s.k) as f64;
                    }
                }
            },
            ..Ops::LIBRARY
        },
    ));
    for (bug, ops) in &wrong {
        let mut out = String::new();
        let r = lecture(ops, None, &mut out);
        assert!(r.is_err(), "the example missed a wrong backward op: {bug}");
    }
}
