//! The network: a multilayer perceptron `Linear → ReLU → … → Linear`, its flat
//! parameter layout, and He initialisation.
//!
//! The parameter vector is one flat array, layer by layer, `[vec(W₁); b₁; vec(W₂); b₂; …]`
//! with each `W: [out, in]` row-major. Gradients and optimizer state use the same layout.

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Layer sizes `[d, h₁, …, C]`: `d` inputs, hidden widths, `C` classes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mlp {
    pub sizes: Vec<usize>,
}

/// One fully connected layer's place in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    pub index: usize,
    pub inp: usize,
    pub out: usize,
    /// Offset of `W: [out, in]` in the flat vector.
    pub w_off: usize,
    /// Offset of `b: [out]`.
    pub b_off: usize,
    /// Whether a ReLU follows (every layer but the last).
    pub relu: bool,
}

impl Mlp {
    /// A network with the given sizes; at least an input and an output, all ≥ 1, and at
    /// least two classes.
    pub fn new(sizes: Vec<usize>) -> Result<Self> {
        let shown = format!("{sizes:?}");
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::invalid("layer sizes", shown, "at least [inputs, classes], every size ≥ 1"));
        }
        if *sizes.last().unwrap() < 2 {
            return Err(Error::invalid("layer sizes", shown, "at least 2 classes"));
        }
        if sizes.iter().any(|&s| s > (1 << 24)) {
            return Err(Error::invalid("layer sizes", shown, "every size ≤ 16,777,216"));
        }
        let count =
            sizes.windows(2).try_fold(0usize, |acc, s| s[0].checked_mul(s[1])?.checked_add(s[1])?.checked_add(acc));
        if count.is_none_or(|c| c > u32::MAX as usize) {
            return Err(Error::invalid("layer sizes", shown, "a network of at most 2^32 parameters"));
        }
        Ok(Mlp { sizes })
    }

    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    pub fn classes(&self) -> usize {
        *self.sizes.last().unwrap()
    }

    pub fn layers(&self) -> Vec<Layer> {
        let mut off = 0;
        let last = self.sizes.len() - 2;
        self.sizes
            .windows(2)
            .enumerate()
            .map(|(index, s)| {
                let l = Layer { index, inp: s[0], out: s[1], w_off: off, b_off: off + s[0] * s[1], relu: index < last };
                off += s[0] * s[1] + s[1];
                l
            })
            .collect()
    }

    /// `m`, the length of the flat parameter vector.
    pub fn param_count(&self) -> usize {
        self.sizes.windows(2).map(|s| s[0] * s[1] + s[1]).sum()
    }

    /// Widest activation row (the largest layer size), for buffer planning.
    pub fn widest(&self) -> usize {
        *self.sizes.iter().max().unwrap()
    }

    /// FLOPs of one training sample, as docs/benchmarks.md counts them: forward `2·in·out`
    /// per layer, backward `2·in·out` for `dW`, plus `2·in·out` for `dX` of every layer
    /// but the first.
    pub fn train_flops_per_sample(&self) -> u64 {
        self.layers()
            .iter()
            .map(|l| {
                let f = 2 * (l.inp * l.out) as u64;
                if l.index == 0 {
                    2 * f
                } else {
                    3 * f
                }
            })
            .sum()
    }

    /// He (Kaiming) normal initialisation, seeded: `W ~ N(0, 2/in)`, `b = 0`.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed, 0);
        let mut w = vec![0.0f32; self.param_count()];
        for l in self.layers() {
            let std = (2.0 / l.inp as f64).sqrt();
            for v in &mut w[l.w_off..l.b_off] {
                *v = (rng.normal() * std) as f32;
            }
        }
        w
    }

    /// Tensor names and shapes as PyTorch's `nn.Sequential(Linear, ReLU, Linear, …)`
    /// names them: `0.weight [out, in]`, `0.bias [out]`, `2.weight`, …; with each
    /// tensor's range in the flat vector.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, std::ops::Range<usize>)> {
        self.layers()
            .iter()
            .flat_map(|l| {
                let k = 2 * l.index;
                [
                    (format!("{k}.weight"), vec![l.out, l.inp], l.w_off..l.b_off),
                    (format!("{k}.bias"), vec![l.out], l.b_off..l.b_off + l.out),
                ]
            })
            .collect()
    }

    /// The layer list in PyTorch's own terms, as `wgtrain.model` stores it: one object per
    /// `nn.Sequential` module, `{"layer": <torch.nn class>, <constructor arguments>…}`, so
    /// `nn.Sequential(*[getattr(nn, l.pop("layer"))(**l) for l in layers])` rebuilds the
    /// network and `load_state_dict(…, strict=True)` loads its weights.
    pub fn torch_layers(&self) -> serde_json::Value {
        let mut layers = Vec::new();
        for l in self.layers() {
            if l.index > 0 {
                layers.push(serde_json::json!({"layer": "ReLU"}));
            }
            layers.push(serde_json::json!({"layer": "Linear", "in_features": l.inp, "out_features": l.out}));
        }
        serde_json::Value::Array(layers)
    }
}
