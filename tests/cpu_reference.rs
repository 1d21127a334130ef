//! The CPU reference itself: gradient checks in f64, the lecture's explicit Jacobians,
//! optimizer semantics against hand-worked values, extreme logits, and the GEMM-crate
//! ops against the plain loops. The Jacobian, optimizer and numerics checks run on the
//! GPU too when there is one.

mod common;
use wgtrain::cpu::{fast, ops};
use wgtrain::optim::{OptimKind, Optimizer};
use wgtrain::rng::Rng;
use wgtrain::verify;

#[test]
fn backprop_matches_finite_differences() {
    for (sizes, batch, seed) in
        [(vec![5, 7, 4, 3], 6, 1), (vec![3, 2], 1, 2), (vec![4, 9, 9, 2], 5, 3), (vec![6, 1, 3], 4, 4)]
    {
        let o = verify::gradcheck(&wgtrain::model::Model::from_sizes(&sizes).unwrap(), batch, seed).unwrap();
        assert!(o.pass, "{}", o.report());
    }
}

/// Every layer kind in one network: convolutions (padded, strided), ReLU fused and alone,
/// max-pooling of an odd size, dropout, flatten, linear.
#[test]
fn cnn_backprop_matches_finite_differences() {
    for (batch, seed) in [(3, 2), (1, 5)] {
        let o = verify::gradcheck(&verify::small_cnn().unwrap(), batch, seed).unwrap();
        assert!(o.pass, "{}", o.report());
    }
}

/// The lecture's tiny layer (d = 3, e = 2): the local Jacobians built explicitly, and
/// every backward op checked to equal `vᵀJ`.
mod jacobians {
    use super::*;

    const X: [f64; 3] = [0.5, -1.25, 2.0];
    const W: [f64; 6] = [0.3, -0.7, 0.2, 1.1, 0.4, -0.6]; // [e=2, d=3], row-major
    const V: [f64; 2] = [0.75, -1.5];

    use wgtrain::jacobian::{close, fc_jacobian_w, fc_jacobian_x};

    /// `∂z/∂x = W`: `[e, d]`.
    fn jac_x() -> Vec<Vec<f64>> {
        fc_jacobian_x(&W, 2, 3)
    }

    /// `∂z/∂w` for `w = [W₁₁ W₁₂ W₁₃ W₂₁ W₂₂ W₂₃ b₁ b₂]`: `xᵀ` staggered `e` times, then `I_e`.
    fn jac_w() -> Vec<Vec<f64>> {
        let j = fc_jacobian_w(&X, 2);
        assert_eq!(
            j,
            [[X[0], X[1], X[2], 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, X[0], X[1], X[2], 0.0, 1.0]],
            "the library's ∂z/∂w is the lecture's"
        );
        j
    }

    /// `vᵀJ`.
    fn vjp(j: &[Vec<f64>]) -> Vec<f64> {
        wgtrain::jacobian::vjp(&V, j)
    }

    #[test]
    fn fc_backward_ops_equal_vjp_on_cpu() {
        let mut dx = vec![0.0; 3];
        ops::fc_backward_input(&V, &W, None, &mut dx, 1, 3, 2);
        assert!(close(&dx, &vjp(&jac_x()), 1e-15), "dX {dx:?} vs vᵀW {:?}", vjp(&jac_x()));
        let (mut dw, mut db) = (vec![0.0; 6], vec![0.0; 2]);
        ops::fc_backward_weights(&V, &X, &mut dw, 1, 3, 2, false);
        ops::fc_backward_bias(&V, &mut db, 1, 2, false);
        let got = [dw, db].concat();
        assert!(close(&got, &vjp(&jac_w()), 1e-15), "[dW; db] {got:?} vs vᵀ∂z/∂w {:?}", vjp(&jac_w()));
    }

    #[test]
    fn fc_backward_ops_equal_vjp_on_gpu() {
        let Some(gpu) = common::gpu() else { return };
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let dx = wgtrain::gpu::ops::fc_backward_input(gpu, &f(&V), &f(&W), None, 1, 3, 2).unwrap();
        let dx: Vec<f64> = dx.iter().map(|&v| f64::from(v)).collect();
        assert!(close(&dx, &vjp(&jac_x()), 1e-6), "GPU dX {dx:?}");
        let dw = wgtrain::gpu::ops::fc_backward_weights(gpu, &f(&V), &f(&X), &[0.0; 6], 1, 3, 2, false).unwrap();
        let db = wgtrain::gpu::ops::fc_backward_bias(gpu, &f(&V), &[0.0; 2], 1, 2, false).unwrap();
        let got: Vec<f64> = [dw, db].concat().iter().map(|&v| f64::from(v)).collect();
        assert!(close(&got, &vjp(&jac_w()), 1e-6), "GPU [dW; db] {got:?}");
    }

    #[test]
    fn relu_backward_equals_vjp_of_its_diagonal_jacobian() {
        let z = [0.5, -0.25, 0.0, 3.0];
        let da = [1.0, 2.0, 3.0, 4.0];
        // J = diag([z > 0]); daᵀJ:
        let expected: Vec<f64> = (0..4).map(|i| if z[i] > 0.0 { da[i] } else { 0.0 }).collect();
        let mut dz = vec![0.0; 4];
        ops::relu_backward(&da, &z, &mut dz);
        assert_eq!(dz, expected);
    }

    #[test]
    fn cross_entropy_gradient_equals_vjp_through_softmax_jacobian() {
        let z = [1.0, -0.5, 2.0, 0.25];
        let y = 2;
        let mut p = vec![0.0; 4];
        ops::softmax(&z, &mut p, 1, 4);
        // ∂p/∂z = diag(p) − p pᵀ; ∂L/∂p = −e_y / p_y; the chain rule gives vᵀJ.
        let v: Vec<f64> = (0..4).map(|c| if c == y { -1.0 / p[y] } else { 0.0 }).collect();
        let j = |r: usize, c: usize| {
            if r == c {
                p[r] - p[r] * p[c]
            } else {
                -p[r] * p[c]
            }
        };
        let expected: Vec<f64> = (0..4).map(|c| (0..4).map(|r| v[r] * j(r, c)).sum()).collect();
        let (mut loss, mut correct, mut dz) = (vec![0.0], vec![0], vec![0.0; 4]);
        ops::softmax_xent(&z, &[y as u32], 1.0, &mut loss, &mut correct, &mut dz, 1, 4);
        assert!(close(&dz, &expected, 1e-14), "{dz:?} vs {expected:?}");
        assert!((loss[0] - (-p[y].ln())).abs() < 1e-14);
        assert_eq!(correct[0], 1);
    }
}

/// Three updates of one parameter `w₀ = 1` with gradients 0.5, −0.2, 0.1 and α = 0.1,
/// against values worked out by hand (PyTorch's update rules).
mod optimizer_semantics {
    use super::*;

    const GS: [f32; 3] = [0.5, -0.2, 0.1];

    fn expected(kind: &str) -> [f64; 3] {
        match kind {
            // w ← w − αg
            "sgd" => [1.0 - 0.05, 0.95 + 0.02, 0.97 - 0.01],
            // v = 0.5, 0.9·0.5 − 0.2 = 0.25, 0.9·0.25 + 0.1 = 0.325; w ← w − αv
            "momentum" => [0.95, 0.95 - 0.025, 0.925 - 0.0325],
            // w ← w − α(g + μv): 0.5 + 0.45, −0.2 + 0.225, 0.1 + 0.2925
            "nesterov" => [1.0 - 0.095, 0.905 - 0.0025, 0.9025 - 0.03925],
            // m̂ = m/(1−0.9ᵗ), v̂ = v/(1−0.999ᵗ), w ← w − α m̂/(√v̂ + 1e-8), worked in f64
            "adam" => [0.9000000019999999, 0.8654394181165107, 0.8275002408356955],
            // as Adam after w ← w(1 − α·0.01) each step
            "adamw" => [0.8990000019999999, 0.8635404181145107, 0.8247377004155809],
            _ => unreachable!(),
        }
    }

    fn cpu_run(kind: &str) -> Vec<f64> {
        let opt = Optimizer::new(OptimKind::parse(kind).unwrap(), 0.1);
        let (mut w, mut s1, mut s2) = (vec![1.0f64], vec![0.0], vec![0.0]);
        (1..=3)
            .map(|t| {
                ops::optimizer_update(&mut w, &[f64::from(GS[t - 1])], &mut s1, &mut s2, &opt.step(t as u64, 0.1));
                w[0]
            })
            .collect()
    }

    #[test]
    fn cpu_updates_match_hand_worked_values() {
        for kind in ["sgd", "momentum", "nesterov", "adam", "adamw"] {
            let got = cpu_run(kind);
            let want = expected(kind);
            for t in 0..3 {
                // The gradients are f32 literals (0.2 is not exact), so allow their rounding.
                assert!((got[t] - want[t]).abs() < 1e-7, "{kind} step {}: {} vs {}", t + 1, got[t], want[t]);
            }
        }
    }

    #[test]
    fn gpu_updates_match_hand_worked_values() {
        let Some(gpu) = common::gpu() else { return };
        for kind in ["sgd", "momentum", "nesterov", "adam", "adamw"] {
            let opt = Optimizer::new(OptimKind::parse(kind).unwrap(), 0.1);
            let (mut w, mut s1, mut s2) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
            for t in 1..=3usize {
                let st = opt.step(t as u64, 0.1);
                (w, s1, s2) = wgtrain::gpu::ops::optimizer_update(gpu, &w, &[GS[t - 1]], &s1, &s2, &st, false).unwrap();
                let want = expected(kind)[t - 1];
                assert!((f64::from(w[0]) - want).abs() < 1e-6, "{kind} step {t}: {} vs {want}", w[0]);
            }
        }
    }

    #[test]
    fn gpu_update_is_skipped_when_the_step_is_flagged_non_finite() {
        let Some(gpu) = common::gpu() else { return };
        let opt = Optimizer::new(OptimKind::parse("adam").unwrap(), 0.1);
        let (w, s1, s2) = wgtrain::gpu::ops::optimizer_update(
            gpu,
            &[1.0, 2.0],
            &[0.5, 0.5],
            &[0.1, 0.1],
            &[0.2, 0.2],
            &opt.step(1, 0.1),
            true,
        )
        .unwrap();
        assert_eq!((w, s1, s2), (vec![1.0, 2.0], vec![0.1, 0.1], vec![0.2, 0.2]));
    }
}

/// Logits of ±80 (exp(160) overflows f32) must give finite, right losses and gradients.
#[test]
fn extreme_logits_give_finite_losses_and_gradients() {
    let (batch, classes) = (3, 10);
    let mut z = vec![0.0f32; batch * classes];
    for n in 0..batch {
        for c in 0..classes {
            z[n * classes + c] = if (c + n) % 2 == 0 { 80.0 } else { -80.0 };
        }
    }
    let y = [1u32, 1, 0]; // rows 0 and 2: the label's logit is −80, row 1: +80
    let check = |loss: &[f32], dz: &[f32], device: &str| {
        assert!(loss.iter().chain(dz).all(|v| v.is_finite()), "{device}: non-finite {loss:?} {dz:?}");
        // Row 0: five logits of +80, label at −80: loss = 160 + ln 5.
        assert!((loss[0] - (160.0 + 5f32.ln())).abs() < 1e-3, "{device}: loss {}", loss[0]);
        assert!((loss[1] - 5f32.ln()).abs() < 1e-5, "{device}: loss {}", loss[1]);
    };
    let (mut loss, mut correct, mut dz) = (vec![0.0f32; batch], vec![0; batch], vec![0.0f32; batch * classes]);
    ops::softmax_xent(&z, &y, 1.0 / batch as f32, &mut loss, &mut correct, &mut dz, batch, classes);
    check(&loss, &dz, "cpu");
    if let Some(gpu) = common::gpu() {
        let (gl, _, gdz) = wgtrain::gpu::ops::softmax_xent(gpu, &z, &y, 1.0 / batch as f32, batch, classes).unwrap();
        check(&gl, &gdz, "gpu");
        let o = verify::softmax_xent(gpu, 257, 10, 80.0, 11).unwrap();
        common::assert_pass(&o);
    }
}

/// The GEMM-crate ops equal the plain loops (both in f64, so only summation order differs).
#[test]
fn fast_cpu_ops_match_reference_loops() {
    let mut rng = Rng::new(5, 0);
    for &(b, i, o) in &[(1, 1, 1), (7, 3, 17), (128, 784, 100), (257, 129, 10), (3, 100, 129)] {
        let g = |n: usize, rng: &mut Rng| (0..n).map(|_| rng.uniform() - 0.5).collect::<Vec<f64>>();
        let (x, w, bias, dz) = (g(b * i, &mut rng), g(o * i, &mut rng), g(o, &mut rng), g(b * o, &mut rng));
        let a: Vec<f64> = g(b * i, &mut rng).iter().map(|v| v.max(0.0)).collect();
        let near = |p: &[f64], q: &[f64], what: &str| {
            assert!(
                p.iter().zip(q).all(|(p, q)| (p - q).abs() <= 1e-12 * (1.0 + q.abs())),
                "{what} B={b} IN={i} OUT={o}"
            )
        };
        let (mut z1, mut z2) = (vec![0.0; b * o], vec![0.0; b * o]);
        ops::fc_forward(&x, &w, &bias, &mut z1, b, i, o, true);
        fast::fc_forward(&x, &w, &bias, &mut z2, b, i, o, true);
        near(&z2, &z1, "fc_forward");
        for acc in [false, true] {
            let (mut dw1, mut db1) = (w.clone(), bias.clone());
            let (mut dw2, mut db2) = (w.clone(), bias.clone());
            ops::fc_backward_weights(&dz, &x, &mut dw1, b, i, o, acc);
            fast::fc_backward_weights(&dz, &x, &mut dw2, b, i, o, acc);
            ops::fc_backward_bias(&dz, &mut db1, b, o, acc);
            fast::fc_backward_bias(&dz, &mut db2, b, o, acc);
            near(&dw2, &dw1, "dW");
            near(&db2, &db1, "db");
        }
        let (mut dx1, mut dx2) = (vec![0.0; b * i], vec![0.0; b * i]);
        ops::fc_backward_input(&dz, &w, Some(&a), &mut dx1, b, i, o);
        fast::fc_backward_input(&dz, &w, Some(&a), &mut dx2, b, i, o);
        near(&dx2, &dx1, "dX");
    }
}
