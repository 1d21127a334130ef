//! A whole network's forward and backward pass on the CPU, built from the op twins:
//! the reference for the GPU step, and (with [`Kernels::Fast`]) the CPU trainer.

use super::{fast, ops};
use crate::model::Mlp;
use crate::Real;

/// Which implementation of the fully connected ops to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The plain loops of [`ops`]: the reference.
    Reference,
    /// The GEMM-crate versions of [`fast`].
    Fast,
}

/// Activations, their gradients and per-sample results for batches of up to `batch` rows.
pub struct Workspace<T> {
    /// `acts[l]: [B, out_l]`, layer `l`'s output (after its ReLU for hidden layers).
    pub acts: Vec<Vec<T>>,
    /// `dz[l]: [B, out_l]`, the loss's gradient with respect to layer `l`'s pre-activation.
    pub dz: Vec<Vec<T>>,
    /// `loss: [B]`, per-sample cross-entropy.
    pub loss: Vec<T>,
    /// `correct: [B]`, 1 where the argmax equals the label.
    pub correct: Vec<u32>,
}

impl<T: Real> Workspace<T> {
    pub fn new(mlp: &Mlp, batch: usize) -> Self {
        let acts = mlp.sizes[1..].iter().map(|&o| vec![T::zero(); batch * o]).collect();
        let dz = mlp.sizes[1..].iter().map(|&o| vec![T::zero(); batch * o]).collect();
        Workspace { acts, dz, loss: vec![T::zero(); batch], correct: vec![0; batch] }
    }
}

/// Forward pass of `x: [B, d]`; the logits end up in `ws.acts.last()`, `[B, C]`.
pub fn forward<T: Real>(mlp: &Mlp, params: &[T], x: &[T], batch: usize, ws: &mut Workspace<T>, k: Kernels) {
    for l in mlp.layers() {
        let (before, rest) = ws.acts.split_at_mut(l.index);
        let input = if l.index == 0 { x } else { &before[l.index - 1][..] };
        let w = &params[l.w_off..l.b_off];
        let b = &params[l.b_off..l.b_off + l.out];
        let z = &mut rest[0];
        match k {
            Kernels::Reference => ops::fc_forward(input, w, b, z, batch, l.inp, l.out, l.relu),
            Kernels::Fast => fast::fc_forward(input, w, b, z, batch, l.inp, l.out, l.relu),
        }
    }
}

/// Forward, softmax cross-entropy and backward for one batch: writes (or, when
/// `accumulate`, adds) `scale · Σ_n ∇ loss_n` into `grads` (same flat layout as
/// `params`), and returns the sum of the per-sample losses and the number correct.
/// `scale` is `1/B` for a mean over the batch.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grad<T: Real>(
    mlp: &Mlp,
    params: &[T],
    x: &[T],
    y: &[u32],
    batch: usize,
    scale: T,
    grads: &mut [T],
    accumulate: bool,
    ws: &mut Workspace<T>,
    k: Kernels,
) -> (f64, u64) {
    forward(mlp, params, x, batch, ws, k);
    let layers = mlp.layers();
    let last = layers.len() - 1;
    let c = mlp.classes();
    ops::softmax_xent(&ws.acts[last], y, scale, &mut ws.loss, &mut ws.correct, &mut ws.dz[last], batch, c);
    for l in layers.iter().rev() {
        let input = if l.index == 0 { x } else { &ws.acts[l.index - 1][..] };
        let (dw, rest) = grads[l.w_off..].split_at_mut(l.inp * l.out);
        let db = &mut rest[..l.out];
        let dz = &ws.dz[l.index];
        match k {
            Kernels::Reference => {
                ops::fc_backward_weights(dz, input, dw, batch, l.inp, l.out, accumulate);
                ops::fc_backward_bias(dz, db, batch, l.out, accumulate);
            }
            Kernels::Fast => {
                fast::fc_backward_weights(dz, input, dw, batch, l.inp, l.out, accumulate);
                fast::fc_backward_bias(dz, db, batch, l.out, accumulate);
            }
        }
        if l.index > 0 {
            let (lower, upper) = ws.dz.split_at_mut(l.index);
            let w = &params[l.w_off..l.b_off];
            let a_prev = Some(&ws.acts[l.index - 1][..]);
            let dx = &mut lower[l.index - 1];
            match k {
                Kernels::Reference => ops::fc_backward_input(&upper[0], w, a_prev, dx, batch, l.inp, l.out),
                Kernels::Fast => fast::fc_backward_input(&upper[0], w, a_prev, dx, batch, l.inp, l.out),
            }
        }
    }
    let loss: f64 = ws.loss[..batch].iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).sum();
    let correct = ws.correct[..batch].iter().map(|&c| u64::from(c)).sum();
    (loss, correct)
}
