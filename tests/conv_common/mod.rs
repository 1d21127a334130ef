//! Shared by conv_reference.rs and conv_parity.rs: the lecture's explicit Jacobians of a
//! convolution and a max-pooling of one sample (built in the library's
//! [`wgtrain::jacobian`] from the forward definitions, not from the backward ops they
//! check), and the test shapes and values.
#![allow(dead_code)]

use wgtrain::cpu::conv::{Conv2dShape, Pool2dShape};

#[allow(unused_imports)]
pub use wgtrain::jacobian::{apply, close, conv_jacobian_w, conv_jacobian_x, pool_jacobian, vjp, Matrix};

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
