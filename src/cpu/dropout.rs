//! The CPU twin of `shaders/dropout.wgsl`: inverted dropout with masks drawn by a
//! counter-based hash of (seed, epoch, dataset sample index, element index) — the seed the
//! layer's own ([`crate::model::Model::dropout_seed`]: the run's for the first dropout
//! layer, mixed with its ordinal for the others)
//! ([`crate::rng::dropout_keep`]), so the GPU draws the same masks and the result of a
//! sample does not depend on which batch, or which row of it, the sample is in.

use crate::rng::{dropout_hash, dropout_scale, dropout_threshold};
use crate::Real;

/// `y = x ⊙ mask / (1 − p)` with `mask[n, j] = dropout_keep(seed, epoch, samples[n], j, p)`;
/// the scale `1/(1 − p)` is rounded to `f32` first (as the GPU gets it), so an `f32`
/// result is one correctly rounded product and equals the GPU's bit for bit.
///
/// `x, y: [B, width]`, `samples: [B]` (each row's index in the dataset), `p` in `[0, 1)`.
#[allow(clippy::too_many_arguments)]
pub fn dropout_forward<T: Real>(x: &[T], y: &mut [T], samples: &[u32], width: usize, seed: u64, epoch: u32, p: f32) {
    let threshold = dropout_threshold(p);
    let scale = T::c(f64::from(dropout_scale(p)));
    for (n, &sample) in samples.iter().enumerate() {
        for j in 0..width {
            let keep = dropout_hash(seed, epoch, sample, j as u32) >= threshold;
            y[n * width + j] = if keep { x[n * width + j] * scale } else { T::zero() };
        }
    }
}

/// Dropout backward (forward: [`dropout_forward`], `y = x ⊙ mask / (1 − p)`): the same
/// diagonal map applied to the gradient, `dx = dy ⊙ mask / (1 − p)`, the mask redrawn
/// from the same keys (nothing is stored between the passes).
///
/// `dy, dx: [B, width]`, `samples: [B]`.
#[allow(clippy::too_many_arguments)]
pub fn dropout_backward<T: Real>(dy: &[T], dx: &mut [T], samples: &[u32], width: usize, seed: u64, epoch: u32, p: f32) {
    dropout_forward(dy, dx, samples, width, seed, epoch, p);
}
