//! A whole network's forward and backward pass on the CPU, node by node through the
//! model's sequence ([`crate::model::Node`]), built from the op twins: the reference for
//! the GPU step, and (with [`Kernels::Fast`]) the CPU trainer.
//!
//! Node `i` reads activation `i` (the input `x` for `i = 0`, else `acts[i−1]`) and writes
//! `acts[i]`; `dz[i]` holds the loss's gradient with respect to node `i`'s output —
//! before its ReLU when one is fused. Going back, each node turns `dz[i]` into its
//! parameters' gradient and `dz[i−1]`; where node `i−1` has a fused ReLU, `dz[i−1]` is
//! masked by `[acts[i−1] > 0]` (inside the product for Linear and Conv2d, after the
//! routing for the other ops). Node 0 computes no input gradient.

use super::{conv, dropout, fast, fast_conv, ops};
use crate::model::{Model, Op};
use crate::Real;

/// Which implementation of the products to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The plain loops of [`ops`] and [`conv`]: the reference.
    Reference,
    /// The GEMM-crate versions of [`fast`] and [`fast_conv`].
    Fast,
}

/// What dropout needs to draw its masks while training: the run's seed, the epoch, and
/// each row's index in the data set.
#[derive(Clone, Copy, Debug)]
pub struct Draw<'a> {
    pub seed: u64,
    pub epoch: u32,
    pub samples: &'a [u32],
}

/// Activations, their gradients and per-sample results for batches of up to `batch` rows.
pub struct Workspace<T> {
    /// `acts[i]: [B, out_len_i]`, node `i`'s output (after its fused ReLU).
    pub acts: Vec<Vec<T>>,
    /// `dz[i]: [B, out_len_i]`, the gradient with respect to node `i`'s output (pre-ReLU).
    pub dz: Vec<Vec<T>>,
    /// `argmax[i]: [B, out_len_i]` for max-pooling nodes (empty for the others).
    pub argmax: Vec<Vec<u32>>,
    /// `loss: [B]`, per-sample cross-entropy.
    pub loss: Vec<T>,
    /// `correct: [B]`, 1 where the argmax equals the label.
    pub correct: Vec<u32>,
}

impl<T: Real> Workspace<T> {
    pub fn new(model: &Model, batch: usize) -> Self {
        let nodes = model.nodes();
        let acts = nodes.iter().map(|n| vec![T::zero(); batch * n.out_len]).collect();
        let dz = nodes.iter().map(|n| vec![T::zero(); batch * n.out_len]).collect();
        let argmax = nodes
            .iter()
            .map(|n| if matches!(n.op, Op::MaxPool2d(_)) { vec![0; batch * n.out_len] } else { Vec::new() })
            .collect();
        Workspace { acts, dz, argmax, loss: vec![T::zero(); batch], correct: vec![0; batch] }
    }
}

/// Forward pass of `x: [B, d]`; the logits end up in `ws.acts.last()`, `[B, C]`. Dropout
/// draws its masks from `draw` (training) or is the identity (`None`, evaluation).
pub fn forward<T: Real>(
    model: &Model,
    params: &[T],
    x: &[T],
    batch: usize,
    ws: &mut Workspace<T>,
    k: Kernels,
    draw: Option<Draw>,
) {
    for (i, n) in model.nodes().iter().enumerate() {
        let (before, rest) = ws.acts.split_at_mut(i);
        let input = if i == 0 { x } else { &before[i - 1][..] };
        let input = &input[..batch * n.in_len];
        let out = &mut rest[0][..batch * n.out_len];
        let (w, b) = (&params[n.w_off..n.b_off], &params[n.b_off..n.b_off + n.params().1]);
        match (n.op, k) {
            (Op::Linear { inp, out: o }, Kernels::Reference) => {
                ops::fc_forward(input, w, b, out, batch, inp, o, n.relu)
            }
            (Op::Linear { inp, out: o }, Kernels::Fast) => fast::fc_forward(input, w, b, out, batch, inp, o, n.relu),
            (Op::Conv2d(s), Kernels::Reference) => conv::conv2d_forward(input, w, b, out, &s.with_batch(batch), n.relu),
            (Op::Conv2d(s), Kernels::Fast) => fast_conv::conv2d_forward(input, w, b, out, &s.with_batch(batch), n.relu),
            (Op::MaxPool2d(s), Kernels::Reference) => {
                conv::maxpool2d_forward(input, out, &mut ws.argmax[i], &s.with_batch(batch))
            }
            (Op::MaxPool2d(s), Kernels::Fast) => {
                fast_conv::maxpool2d_forward(input, out, &mut ws.argmax[i], &s.with_batch(batch))
            }
            (Op::ReLU, _) => ops::relu_forward(input, out),
            (Op::Dropout { p }, _) => match draw {
                Some(d) => {
                    let seed = model.dropout_seed(i, d.seed);
                    dropout::dropout_forward(input, out, d.samples, n.out_len, seed, d.epoch, p)
                }
                None => out.copy_from_slice(input),
            },
        }
    }
}

/// Forward, softmax cross-entropy and backward for one batch: writes (or, when
/// `accumulate`, adds) `scale · Σ_n ∇ loss_n` into `grads` (same flat layout as
/// `params`), and returns the sum of the per-sample losses and the number correct.
/// `scale` is `1/B` for a mean over the batch.
#[allow(clippy::too_many_arguments)]
pub fn loss_and_grad<T: Real>(
    model: &Model,
    params: &[T],
    x: &[T],
    y: &[u32],
    batch: usize,
    scale: T,
    grads: &mut [T],
    accumulate: bool,
    ws: &mut Workspace<T>,
    k: Kernels,
    draw: Draw,
) -> (f64, u64) {
    forward(model, params, x, batch, ws, k, Some(draw));
    let nodes = model.nodes();
    let last = nodes.len() - 1;
    let c = model.classes();
    ops::softmax_xent(&ws.acts[last], y, scale, &mut ws.loss, &mut ws.correct, &mut ws.dz[last], batch, c);
    for (i, n) in nodes.iter().enumerate().rev() {
        let input = if i == 0 { x } else { &ws.acts[i - 1][..] };
        let input = &input[..batch * n.in_len];
        let (lower, upper) = ws.dz.split_at_mut(i);
        let dz = &upper[0][..batch * n.out_len];
        let (wl, bl) = n.params();
        let w = &params[n.w_off..n.b_off];
        let (dw, rest) = grads[n.w_off..].split_at_mut(wl);
        let db = &mut rest[..bl];
        // Where the node before has a fused ReLU, its gradient is masked by its output.
        let prev_relu = i > 0 && nodes[i - 1].relu;
        let mask = if prev_relu { Some(input) } else { None };
        match (n.op, k) {
            (Op::Linear { inp, out }, Kernels::Reference) => {
                ops::fc_backward_weights(dz, input, dw, batch, inp, out, accumulate);
                ops::fc_backward_bias(dz, db, batch, out, accumulate);
                if i > 0 {
                    ops::fc_backward_input(dz, w, mask, &mut lower[i - 1], batch, inp, out);
                }
            }
            (Op::Linear { inp, out }, Kernels::Fast) => {
                fast::fc_backward_weights(dz, input, dw, batch, inp, out, accumulate);
                fast::fc_backward_bias(dz, db, batch, out, accumulate);
                if i > 0 {
                    fast::fc_backward_input(dz, w, mask, &mut lower[i - 1], batch, inp, out);
                }
            }
            (Op::Conv2d(s), Kernels::Reference) => {
                let s = s.with_batch(batch);
                conv::conv2d_backward_weights(dz, input, dw, &s, accumulate);
                conv::conv2d_backward_bias(dz, db, &s, accumulate);
                if i > 0 {
                    conv::conv2d_backward_input(dz, w, mask, &mut lower[i - 1], &s);
                }
            }
            (Op::Conv2d(s), Kernels::Fast) => {
                let s = s.with_batch(batch);
                fast_conv::conv2d_backward_weights(dz, input, dw, &s, accumulate);
                fast_conv::conv2d_backward_bias(dz, db, &s, accumulate);
                if i > 0 {
                    fast_conv::conv2d_backward_input(dz, w, mask, &mut lower[i - 1], &s);
                }
            }
            _ if i == 0 => {}
            (Op::MaxPool2d(s), Kernels::Reference) => {
                let dx = &mut lower[i - 1][..batch * n.in_len];
                conv::maxpool2d_backward(dz, &ws.argmax[i], dx, &s.with_batch(batch));
                if let Some(a) = mask {
                    ops::relu_mask(dx, a);
                }
            }
            (Op::MaxPool2d(s), Kernels::Fast) => {
                let dx = &mut lower[i - 1][..batch * n.in_len];
                fast_conv::maxpool2d_backward(dz, &ws.argmax[i], mask, dx, &s.with_batch(batch));
            }
            (Op::ReLU, _) => ops::relu_backward(dz, input, &mut lower[i - 1][..batch * n.in_len]),
            (Op::Dropout { p }, _) => {
                let dx = &mut lower[i - 1][..batch * n.in_len];
                let seed = model.dropout_seed(i, draw.seed);
                dropout::dropout_backward(dz, dx, draw.samples, n.out_len, seed, draw.epoch, p);
                if let Some(a) = mask {
                    ops::relu_mask(dx, a);
                }
            }
        }
    }
    let loss: f64 = ws.loss[..batch].iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).sum();
    let correct = ws.correct[..batch].iter().map(|&c| u64::from(c)).sum();
    (loss, correct)
}
