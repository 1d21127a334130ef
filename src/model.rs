//! The network: a sequence of layers as PyTorch's `nn.Sequential` holds them — `Linear`,
//! `ReLU`, `Conv2d`, `MaxPool2d`, `Flatten`, `Dropout` — its shapes, its flat parameter
//! layout, He initialisation, and the written form (`--model`).
//!
//! A sample flows through the layers as a [`Shape`]: an image `[C, H, W]` (NCHW per batch,
//! as PyTorch) or a flat vector `[D]`. Shapes are inferred from the input and checked layer
//! by layer before anything is allocated ([`Model::new`]).
//!
//! The parameter vector is one flat array, layer by layer in sequence order, each layer's
//! weight then its bias, each row-major in PyTorch's layout: `Linear` `W: [out, in]`,
//! `b: [out]`; `Conv2d` `W: [C_out, C_in, k, k]`, `b: [C_out]`. Gradients and optimizer
//! state use the same layout. (For an MLP this is the layout wgtrain always had.)
//!
//! The engines run the sequence as [`Node`]s: a `ReLU` right after a `Linear` or
//! `Conv2d` is fused into it, a `Flatten` is only a change of view (NCHW rows are already
//! flat in PyTorch's order), every other layer is one node.

use crate::cpu::conv::{Conv2dShape, Pool2dShape};
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The shape of one sample: an image `[C, H, W]` or a flat vector `[D]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Flat(usize),
    Image { c: usize, h: usize, w: usize },
}

impl Shape {
    /// Values per sample.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Flat(d) => d,
            Shape::Image { c, h, w } => c * h * w,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of a data set's samples from their dimensions (IDX: `[H, W]` or
    /// `[C, H, W]` after the count; CSV: `[D]`).
    pub fn from_dims(dims: &[usize]) -> Shape {
        match *dims {
            [h, w] => Shape::Image { c: 1, h, w },
            [c, h, w] => Shape::Image { c, h, w },
            _ => Shape::Flat(dims.iter().product()),
        }
    }

    /// The dimensions as a list, `[C, H, W]` or `[D]`.
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            Shape::Flat(d) => vec![d],
            Shape::Image { c, h, w } => vec![c, h, w],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Shape::Flat(d) => write!(f, "[{d}]"),
            Shape::Image { c, h, w } => write!(f, "[{c}, {h}, {w}]"),
        }
    }
}

/// `--input C,H,W`: the shape CSV rows are read as (they are flat otherwise).
pub fn parse_input_shape(s: &str) -> std::result::Result<Shape, String> {
    let dims: Vec<usize> = s
        .split(',')
        .map(|t| t.trim().parse::<usize>().ok().filter(|&v| v >= 1))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("`{s}` is not C,H,W (three whole numbers ≥ 1, e.g. 1,28,28)"))?;
    match *dims.as_slice() {
        [c, h, w] => Ok(Shape::Image { c, h, w }),
        _ => Err(format!("`{s}` is not C,H,W (three whole numbers ≥ 1, e.g. 1,28,28)")),
    }
}

/// One layer, as written in a model spec and as `nn.Sequential` holds it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layer {
    /// `nn.Linear(in, out)`; `in` from the shape before. The first layer of a model may
    /// take an image: it reads the sample flattened (how `--hidden` models read pixels).
    Linear {
        out: usize,
    },
    ReLU,
    /// `nn.Conv2d(C_in, out, kernel, stride, padding)`; `C_in` from the shape before.
    Conv2d {
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    /// `nn.MaxPool2d(kernel)`: k×k windows, stride k, floor mode.
    MaxPool2d {
        kernel: usize,
    },
    Flatten,
    /// `nn.Dropout(p)`: inverted dropout while training, identity in evaluation.
    Dropout {
        p: f32,
    },
}

impl Layer {
    /// The token of the written form: `linear:128`, `relu`, `conv:32:3:p1`, `pool:2`, …
    pub fn token(&self) -> String {
        match *self {
            Layer::Linear { out } => format!("linear:{out}"),
            Layer::ReLU => "relu".into(),
            Layer::Conv2d { out, kernel, stride, padding } => {
                let mut t = format!("conv:{out}:{kernel}");
                if stride != 1 {
                    t += &format!(":s{stride}");
                }
                if padding != 0 {
                    t += &format!(":p{padding}");
                }
                t
            }
            Layer::MaxPool2d { kernel } => format!("pool:{kernel}"),
            Layer::Flatten => "flatten".into(),
            Layer::Dropout { p } => format!("dropout:{p}"),
        }
    }
}

/// What `--model` accepts, for `--help` and errors.
pub const SPEC_HELP: &str = "mlp (the default: Linear/ReLU layers of --hidden), cnn (conv:32:3:p1,relu,pool:2,\
conv:64:3:p1,relu,pool:2,flatten,linear:128,relu,linear), or layers separated by commas: linear:N, relu, \
conv:OUT:K[:sS][:pP] (K×K kernel, stride S, zero padding P), pool:K (K×K max-pooling, stride K), flatten, \
dropout:P; the last is `linear` (its size is the class count)";

/// The `cnn` preset's layers before the classifier.
const CNN: &str = "conv:32:3:p1,relu,pool:2,conv:64:3:p1,relu,pool:2,flatten,linear:128,relu,linear";

/// A parsed `--model` spec: the layers, the last `Linear`'s size left to the class count.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub layers: Vec<Layer>,
    /// The last layer is `linear` without a size (sized to the classes).
    pub open_end: bool,
}

impl Spec {
    /// Parses `mlp` (with `hidden`), `cnn`, or a written sequence; errors name the bad token.
    pub fn parse(s: &str, hidden: &[usize]) -> std::result::Result<Spec, String> {
        match s.trim() {
            "mlp" => {
                let mut layers: Vec<Layer> =
                    hidden.iter().flat_map(|&out| [Layer::Linear { out }, Layer::ReLU]).collect();
                layers.push(Layer::Linear { out: 0 });
                return Ok(Spec { layers, open_end: true });
            }
            "cnn" => return Spec::parse(CNN, hidden),
            _ => {}
        }
        let tokens: Vec<&str> = s.split(',').map(str::trim).collect();
        let mut layers = Vec::new();
        let mut open_end = false;
        for (i, tok) in tokens.iter().enumerate() {
            let bad = |why: &str| format!("layer {} `{tok}`: {why} (expected {SPEC_HELP})", i + 1);
            let parts: Vec<&str> = tok.split(':').collect();
            let num = |t: &str, what: &str| -> std::result::Result<usize, String> {
                t.parse::<usize>()
                    .ok()
                    .filter(|&v| (1..=1 << 24).contains(&v))
                    .ok_or_else(|| bad(&format!("{what} `{t}` is not a whole number in 1..=16777216")))
            };
            let layer = match parts[0] {
                "linear" | "fc" if parts.len() == 1 => {
                    if i + 1 != tokens.len() {
                        return Err(bad("only the last linear may leave out its size"));
                    }
                    open_end = true;
                    Layer::Linear { out: 0 }
                }
                "linear" | "fc" if parts.len() == 2 => Layer::Linear { out: num(parts[1], "size")? },
                "relu" if parts.len() == 1 => Layer::ReLU,
                "flatten" if parts.len() == 1 => Layer::Flatten,
                "pool" | "maxpool" if parts.len() == 2 => Layer::MaxPool2d { kernel: num(parts[1], "window")? },
                "dropout" if parts.len() == 2 => {
                    let p = parts[1].parse::<f32>().ok().filter(|p| (0.0..1.0).contains(p));
                    Layer::Dropout { p: p.ok_or_else(|| bad("the probability must be a number in [0, 1)"))? }
                }
                "conv" if (3..=5).contains(&parts.len()) => {
                    let (mut stride, mut padding) = (1, 0);
                    for opt in &parts[3..] {
                        if let Some(v) = opt.strip_prefix('s') {
                            stride = num(v, "stride")?;
                        } else if let Some(v) = opt.strip_prefix('p') {
                            padding = v.parse().map_err(|_| bad(&format!("padding `{v}` is not a whole number")))?;
                        } else {
                            return Err(bad(&format!("`{opt}` is neither sS (stride) nor pP (padding)")));
                        }
                    }
                    Layer::Conv2d { out: num(parts[1], "channels")?, kernel: num(parts[2], "kernel")?, stride, padding }
                }
                "linear" | "fc" | "relu" | "flatten" | "pool" | "maxpool" | "dropout" | "conv" => {
                    return Err(bad("wrong number of `:` fields"))
                }
                _ => return Err(bad("unknown layer")),
            };
            layers.push(layer);
        }
        if !matches!(layers.last(), Some(Layer::Linear { .. })) {
            return Err(format!("`{s}` does not end in `linear`: the last layer gives the class scores"));
        }
        Ok(Spec { layers, open_end })
    }

    /// The model of this spec on samples of `input` with `classes` classes.
    pub fn build(&self, input: Shape, classes: usize) -> Result<Model> {
        let mut layers = self.layers.clone();
        if self.open_end {
            *layers.last_mut().expect("spec ends in linear") = Layer::Linear { out: classes };
        }
        let model = Model::new(input, layers)?;
        if model.classes() != classes {
            let got = format!("{} class scores from `{}`", model.classes(), model.spec());
            return Err(Error::shape("the model's last layer", format!("{classes} (the data's classes)"), got));
        }
        Ok(model)
    }
}

/// One step of the forward pass as the engines run it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    Linear {
        inp: usize,
        out: usize,
    },
    /// The shape with `batch` 1; the engines set the batch.
    Conv2d(Conv2dShape),
    MaxPool2d(Pool2dShape),
    /// A ReLU not fused into the layer before.
    ReLU,
    Dropout {
        p: f32,
    },
}

/// A node: an op, where its parameters are, and whether a ReLU is fused after it.
/// Node `i` reads activation `i` (activation 0 is the input) and writes activation `i+1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    /// The position of its layer in `nn.Sequential` (what its tensors are named by).
    pub layer: usize,
    pub op: Op,
    /// Values per sample read and written.
    pub in_len: usize,
    pub out_len: usize,
    /// Offsets of the weight and bias in the flat vector (Linear and Conv2d).
    pub w_off: usize,
    pub b_off: usize,
    /// A ReLU follows and is fused (Linear and Conv2d only).
    pub relu: bool,
}

impl Node {
    /// Weights and biases it holds.
    pub fn params(&self) -> (usize, usize) {
        match self.op {
            Op::Linear { inp, out } => (inp * out, out),
            Op::Conv2d(s) => (s.weight_len(), s.c_out),
            _ => (0, 0),
        }
    }

    /// Fan-in of each output (He initialisation's `n`): `in` or `C_in·k·k`.
    fn fan_in(&self) -> usize {
        match self.op {
            Op::Linear { inp, .. } => inp,
            Op::Conv2d(s) => s.c_in * s.k * s.k,
            _ => 0,
        }
    }

    /// Forward FLOPs of one sample of its product (0 for the element-wise ops).
    pub fn forward_flops(&self) -> u64 {
        match self.op {
            Op::Linear { inp, out } => 2 * (inp * out) as u64,
            Op::Conv2d(s) => 2 * (s.weight_len() * s.h_out * s.w_out) as u64,
            _ => 0,
        }
    }
}

/// A network: its input shape and layers, with their nodes and parameter layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub input: Shape,
    pub layers: Vec<Layer>,
    nodes: Vec<Node>,
    /// `(layer, input shape, output shape)` of every layer, in order.
    shapes: Vec<(usize, Shape, Shape)>,
    params: usize,
}

impl Model {
    /// Checks `layers` on samples of `input` layer by layer (an error names the layer, the
    /// shape it got and what it needs) and lays out the parameters.
    pub fn new(input: Shape, layers: Vec<Layer>) -> Result<Model> {
        if input.is_empty() {
            return Err(Error::invalid("model input", input, "at least one value per sample"));
        }
        let mut shape = input;
        let mut nodes: Vec<Node> = Vec::new();
        let mut shapes = Vec::new();
        let mut off = 0usize;
        for (i, layer) in layers.iter().enumerate() {
            let name = format!("layer {i} ({})", layer.token());
            let at = |what: String| Error::shape(name.as_str(), what, shape);
            let (op, next) = match (*layer, shape) {
                (Layer::Linear { out: 0 }, _) => return Err(at("a size of at least 1".into())),
                (Layer::Linear { out }, Shape::Flat(inp)) => (Some(Op::Linear { inp, out }), Shape::Flat(out)),
                (Layer::Linear { out }, Shape::Image { .. }) if i == 0 => {
                    (Some(Op::Linear { inp: shape.len(), out }), Shape::Flat(out))
                }
                (Layer::Linear { .. }, Shape::Image { .. }) => {
                    return Err(at("a flat input (put `flatten` before it)".into()))
                }
                (Layer::Conv2d { out, kernel, stride, padding }, Shape::Image { c, h, w }) => {
                    let s = Conv2dShape::new(1, c, h, w, out, kernel, stride, padding)
                        .map_err(|_| at(format!("an input of at least {kernel}x{kernel} with padding {padding}")))?;
                    (Some(Op::Conv2d(s)), Shape::Image { c: out, h: s.h_out, w: s.w_out })
                }
                (Layer::MaxPool2d { kernel }, Shape::Image { c, h, w }) => {
                    let s = Pool2dShape::new(1, c, h, w, kernel)
                        .map_err(|_| at(format!("an image of at least {kernel}x{kernel}")))?;
                    (Some(Op::MaxPool2d(s)), Shape::Image { c, h: s.h_out, w: s.w_out })
                }
                (Layer::Conv2d { .. } | Layer::MaxPool2d { .. }, Shape::Flat(_)) => {
                    return Err(at("an image [C, H, W] (CSV rows are flat unless --input C,H,W)".into()))
                }
                (Layer::Flatten, _) => (None, Shape::Flat(shape.len())),
                (Layer::ReLU, _) => {
                    let fuse = match nodes.last_mut() {
                        Some(n) if n.layer + 1 == i && matches!(n.op, Op::Linear { .. } | Op::Conv2d(_)) => Some(n),
                        _ => None,
                    };
                    if let Some(n) = fuse {
                        n.relu = true;
                        (None, shape)
                    } else {
                        (Some(Op::ReLU), shape)
                    }
                }
                (Layer::Dropout { p }, _) => (Some(Op::Dropout { p }), shape),
            };
            if next.len() > 1 << 26 {
                return Err(at(format!("an output of at most 2^26 values per sample, not {next}")));
            }
            if let Some(op) = op {
                let mut node = Node {
                    layer: i,
                    op,
                    in_len: shape.len(),
                    out_len: next.len(),
                    w_off: off,
                    b_off: off,
                    relu: false,
                };
                let (w, b) = node.params();
                node.b_off = off + w;
                off = w
                    .checked_add(b)
                    .and_then(|n| n.checked_add(off))
                    .filter(|&m| m <= u32::MAX as usize)
                    .ok_or_else(|| at("a network of at most 2^32 parameters".into()))?;
                nodes.push(node);
            }
            shapes.push((i, shape, next));
            shape = next;
        }
        match (nodes.last(), shape) {
            (Some(Node { op: Op::Linear { .. }, relu: false, .. }), Shape::Flat(c)) if c >= 2 => {}
            _ => {
                return Err(Error::invalid(
                    "model",
                    layers.iter().map(Layer::token).collect::<Vec<_>>().join(","),
                    "a sequence ending in a linear layer of at least 2 class scores",
                ))
            }
        }
        Ok(Model { input, layers, nodes, shapes, params: off })
    }

    /// The multilayer perceptron of `--hidden`: `Linear(d→h₁), ReLU, …, Linear(→classes)`.
    pub fn mlp(input: Shape, hidden: &[usize], classes: usize) -> Result<Model> {
        Spec::parse("mlp", hidden).expect("mlp preset").build(input, classes)
    }

    /// The model of a run folder written before layer sequences: an MLP of `sizes`
    /// `[d, h₁, …, C]`.
    pub fn from_sizes(sizes: &[usize]) -> Result<Model> {
        match sizes {
            [d, hidden @ .., c] => Model::mlp(Shape::Flat(*d), hidden, *c),
            _ => Err(Error::invalid("layer sizes", format!("{sizes:?}"), "at least [inputs, classes]")),
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The seed node `i` (a dropout node) draws its masks with, from the run's `seed`:
    /// [`crate::rng::dropout_layer_seed`] of its ordinal among the model's dropout nodes.
    pub fn dropout_seed(&self, i: usize, seed: u64) -> u64 {
        let ordinal = self.nodes[..i].iter().filter(|n| matches!(n.op, Op::Dropout { .. })).count();
        crate::rng::dropout_layer_seed(seed, ordinal as u32)
    }

    /// Values per input sample.
    pub fn inputs(&self) -> usize {
        self.input.len()
    }

    pub fn classes(&self) -> usize {
        self.nodes.last().expect("a model has nodes").out_len
    }

    /// `m`, the length of the flat parameter vector.
    pub fn param_count(&self) -> usize {
        self.params
    }

    /// The widest activation (values per sample), for buffer planning.
    pub fn widest(&self) -> usize {
        self.nodes.iter().map(|n| n.in_len.max(n.out_len)).max().unwrap_or(1)
    }

    /// The written form, `--model` syntax with every size filled in.
    pub fn spec(&self) -> String {
        self.layers.iter().map(Layer::token).collect::<Vec<_>>().join(",")
    }

    /// The sizes `[d, h₁, …, C]` when the model is an MLP as `--hidden` builds it.
    pub fn mlp_sizes(&self) -> Option<Vec<usize>> {
        let mut sizes = vec![self.inputs()];
        for (i, n) in self.nodes.iter().enumerate() {
            match n.op {
                Op::Linear { out, .. } if n.relu == (i + 1 < self.nodes.len()) => sizes.push(out),
                _ => return None,
            }
        }
        Some(sizes)
    }

    /// One line per layer: position, layer, output shape, parameters.
    pub fn summary(&self) -> Vec<String> {
        self.shapes
            .iter()
            .map(|&(i, _, out)| {
                let params: usize =
                    self.nodes.iter().filter(|n| n.layer == i).map(|n| n.params().0 + n.params().1).sum();
                format!(
                    "{i:>3}  {:<16} → {out}{}",
                    self.layers[i].token(),
                    if params > 0 { format!("  {params} parameters") } else { String::new() }
                )
            })
            .collect()
    }

    /// FLOPs of one training sample, as docs/benchmarks.md counts them: per Linear and
    /// Conv2d its forward product, `dW` as much again, and `dX` as much again for every one
    /// but the one reading the input.
    pub fn train_flops_per_sample(&self) -> u64 {
        self.nodes.iter().map(|n| n.forward_flops() * if n.layer == self.nodes[0].layer { 2 } else { 3 }).sum()
    }

    /// He (Kaiming) normal initialisation, seeded: `W ~ N(0, 2/fan_in)`, `b = 0`, layer by
    /// layer from one stream (an MLP gets the weights it always got).
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed, 0);
        let mut w = vec![0.0f32; self.param_count()];
        for n in &self.nodes {
            if n.params().0 == 0 {
                continue;
            }
            let std = (2.0 / n.fan_in() as f64).sqrt();
            for v in &mut w[n.w_off..n.b_off] {
                *v = (rng.normal() * std) as f32;
            }
        }
        w
    }

    /// Tensor names and shapes as PyTorch's `nn.Sequential` names them (`0.weight`,
    /// `0.bias`, `3.weight`, … by layer position), with each tensor's range in the flat
    /// vector.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let (w_shape, b_len) = match n.op {
                Op::Linear { inp, out } => (vec![out, inp], out),
                Op::Conv2d(s) => (vec![s.c_out, s.c_in, s.k, s.k], s.c_out),
                _ => continue,
            };
            out.push((format!("{}.weight", n.layer), w_shape, n.w_off..n.b_off));
            out.push((format!("{}.bias", n.layer), vec![b_len], n.b_off..n.b_off + b_len));
        }
        out
    }

    /// The layer list in PyTorch's own terms, as `wgtrain.model` stores it: one object per
    /// `nn.Sequential` module, `{"layer": <torch.nn class>, <constructor arguments>…}`, so
    /// `nn.Sequential(*[getattr(nn, l.pop("layer"))(**l) for l in layers])` rebuilds the
    /// network and `load_state_dict(…, strict=True)` loads its weights.
    pub fn torch_layers(&self) -> serde_json::Value {
        use serde_json::json;
        let layers = self
            .shapes
            .iter()
            .map(|&(i, before, _)| match self.layers[i] {
                Layer::Linear { out } => json!({"layer": "Linear", "in_features": before.len(), "out_features": out}),
                Layer::ReLU => json!({"layer": "ReLU"}),
                Layer::Conv2d { out, kernel, stride, padding } => json!({
                    "layer": "Conv2d", "in_channels": before.dims()[0], "out_channels": out,
                    "kernel_size": kernel, "stride": stride, "padding": padding
                }),
                Layer::MaxPool2d { kernel } => json!({"layer": "MaxPool2d", "kernel_size": kernel}),
                Layer::Flatten => json!({"layer": "Flatten"}),
                Layer::Dropout { p } => json!({"layer": "Dropout", "p": p}),
            })
            .collect();
        serde_json::Value::Array(layers)
    }

    /// The model [`Self::torch_layers`] describes, on samples of `input`.
    pub fn from_torch_layers(input: Shape, layers: &serde_json::Value) -> std::result::Result<Model, String> {
        let list = layers.as_array().ok_or("the layer list is not a JSON list")?;
        let mut out = Vec::new();
        for (i, l) in list.iter().enumerate() {
            let field = |k: &str| -> std::result::Result<usize, String> {
                l.get(k)
                    .and_then(serde_json::Value::as_u64)
                    .map(|v| v as usize)
                    .ok_or_else(|| format!("layer {i} lacks a whole-number `{k}`"))
            };
            let opt = |k: &str, default: usize| l.get(k).map_or(Ok(default), |_| field(k));
            out.push(match l.get("layer").and_then(serde_json::Value::as_str) {
                Some("Linear") => Layer::Linear { out: field("out_features")? },
                Some("ReLU") => Layer::ReLU,
                Some("Conv2d") => Layer::Conv2d {
                    out: field("out_channels")?,
                    kernel: field("kernel_size")?,
                    stride: opt("stride", 1)?,
                    padding: opt("padding", 0)?,
                },
                Some("MaxPool2d") => Layer::MaxPool2d { kernel: field("kernel_size")? },
                Some("Flatten") => Layer::Flatten,
                Some("Dropout") => Layer::Dropout {
                    p: l.get("p").and_then(serde_json::Value::as_f64).ok_or(format!("layer {i} lacks `p`"))? as f32,
                },
                other => {
                    return Err(format!(
                        "layer {i} is {other:?}, not one of Linear, ReLU, Conv2d, MaxPool2d, Flatten, Dropout"
                    ))
                }
            });
        }
        let model = Model::new(input, out).map_err(|e| e.to_string())?;
        // The stored in_features / in_channels must match what the input shape gives.
        if model.torch_layers() != *layers {
            return Err(format!("the layer list does not fit inputs of shape {input}"));
        }
        Ok(model)
    }
}

/// As stored in `config.json` and the state file: the input shape and the written form.
/// Files written before layer sequences hold the MLP's sizes instead, and read back as it.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ModelRepr {
    Spec { input: Vec<usize>, layers: String },
    Sizes(Vec<usize>),
}

impl Serialize for Model {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ModelRepr::Spec { input: self.input.dims(), layers: self.spec() }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Model {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        match ModelRepr::deserialize(d)? {
            ModelRepr::Sizes(sizes) => Model::from_sizes(&sizes).map_err(D::Error::custom),
            ModelRepr::Spec { input, layers } => {
                let spec = Spec::parse(&layers, &[]).map_err(D::Error::custom)?;
                if spec.open_end {
                    return Err(D::Error::custom(format!("model `{layers}` leaves its last size open")));
                }
                let shape = match *input.as_slice() {
                    [d] => Shape::Flat(d),
                    [c, h, w] => Shape::Image { c, h, w },
                    _ => return Err(D::Error::custom(format!("model input {input:?} is neither [D] nor [C, H, W]"))),
                };
                Model::new(shape, spec.layers).map_err(D::Error::custom)
            }
        }
    }
}
