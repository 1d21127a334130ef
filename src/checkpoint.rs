//! Weights in safetensors, named as PyTorch's `nn.Sequential` names them (`0.weight`,
//! `0.bias`, `3.weight`, … by layer position), so
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads them. Metadata holds
//! the layer list in PyTorch's terms ([`MODEL_KEY`]) and whatever the caller adds. Files are written
//! atomically: a temporary file beside the target, fsync'd, then renamed over it.

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::{Model, Shape};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key of the layer list in PyTorch's terms ([`Model::torch_layers`]), in every
/// weights file.
pub const MODEL_KEY: &str = "wgtrain.model";
/// The metadata key of the model's input: its shape and scaling (`run::META_INPUT`, an
/// `InputTransform` as JSON); a model that starts with a convolution takes its shape from it.
pub const INPUT_KEY: &str = "wgtrain.input";

/// Serialises `tensors` (name, shape, values) with `metadata` to safetensors bytes.
pub fn to_bytes(tensors: &[(String, Vec<usize>, &[f32])], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, shape, v)| {
            TensorView::new(Dtype::F32, shape.clone(), bytemuck::cast_slice(v))
                .map(|t| (n.clone(), t))
                .map_err(|e| Error::shape("safetensors tensor", format!("{n}: values that fill {shape:?}"), e))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::precondition("safetensors::serialize", format!("serialisable tensors ({e})")))
}

/// Saves the flat parameter vector of `model` as PyTorch-named tensors, with the layer
/// list under [`MODEL_KEY`].
pub fn save_weights(path: &Path, model: &Model, params: &[f32], mut metadata: HashMap<String, String>) -> Result<()> {
    if params.len() != model.param_count() {
        return Err(Error::shape("save_weights", format!("{} parameters", model.param_count()), params.len()));
    }
    metadata.insert(MODEL_KEY.into(), model.torch_layers().to_string());
    metadata.insert("format".into(), "pt".into());
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        model.tensors().into_iter().map(|(n, s, r)| (n, s, &params[r])).collect();
    write_atomic(path, &to_bytes(&tensors, metadata)?)
}

/// A loaded weights file: the network, its flat parameters, and the metadata.
pub struct Weights {
    pub model: Model,
    pub params: Vec<f32>,
    pub metadata: HashMap<String, String>,
}

/// Loads a file written by [`save_weights`] (or, without [`MODEL_KEY`], any safetensors
/// file holding an `nn.Sequential` of Linear layers in f32, as wgtrain wrote before layer
/// sequences), checking every name, shape and type.
pub fn load_weights(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_weights(path, &bytes)
}

/// [`load_weights`] on bytes already read (`path` is for messages).
pub fn parse_weights(path: &Path, bytes: &[u8]) -> Result<Weights> {
    let fail = |what: String| Error::format(path, what);
    let st = SafeTensors::deserialize(bytes).map_err(|e| fail(format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| fail(format!("bad safetensors header: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let model = match metadata.get(MODEL_KEY) {
        Some(layers) => model_of(&st, &metadata, layers).map_err(|e| fail(format!("metadata `{MODEL_KEY}`: {e}")))?,
        None => Model::from_sizes(&linear_sizes(&st).map_err(fail)?).map_err(|e| fail(e.to_string()))?,
    };
    let mut params = vec![0.0f32; model.param_count()];
    for (name, shape, range) in model.tensors() {
        let t = st.tensor(&name).map_err(|_| fail(format!("tensor {name} is missing")))?;
        if t.dtype() != Dtype::F32 {
            return Err(fail(format!("tensor {name} is {:?}, expected F32", t.dtype())));
        }
        if t.shape() != shape.as_slice() {
            return Err(fail(format!("tensor {name} has shape {:?}, expected {shape:?}", t.shape())));
        }
        let data = t.data();
        for (p, c) in params[range].iter_mut().zip(data.chunks_exact(4)) {
            *p = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    Ok(Weights { model, params, metadata })
}

/// The model the layer list `layers` (JSON) describes, on inputs of the shape in
/// `wgtrain.input`, or, where that is absent, flat inputs as wide as `0.weight` takes.
fn model_of(st: &SafeTensors, metadata: &HashMap<String, String>, layers: &str) -> std::result::Result<Model, String> {
    let list: serde_json::Value = serde_json::from_str(layers).map_err(|e| format!("not JSON ({e})"))?;
    let stored: Option<Vec<usize>> = metadata
        .get(INPUT_KEY)
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| serde_json::from_value(v.get("shape")?.clone()).ok())
        .filter(|s: &Vec<usize>| !s.is_empty());
    let input = match stored.as_deref() {
        Some([c, h, w]) => Shape::Image { c: *c, h: *h, w: *w },
        Some(dims) => Shape::Flat(dims.iter().product()),
        None => {
            let t = st.tensor("0.weight").map_err(|_| "no input shape stored and no tensor 0.weight".to_string())?;
            Shape::Flat(*t.shape().last().unwrap_or(&0))
        }
    };
    Model::from_torch_layers(input, &list)
}

/// The layer sizes of an `nn.Sequential` of Linear layers, from the weight shapes:
/// `0.weight [h1, d]`, `2.weight [h2, h1]`, …
fn linear_sizes(st: &SafeTensors) -> std::result::Result<Vec<usize>, String> {
    let mut sizes = Vec::new();
    let mut k = 0;
    while let Ok(t) = st.tensor(&format!("{k}.weight")) {
        let s = t.shape();
        if s.len() != 2 {
            return Err(format!("{k}.weight has shape {s:?}, expected [out, in] (and no `{MODEL_KEY}` metadata)"));
        }
        if sizes.is_empty() {
            sizes.push(s[1]);
        } else if *sizes.last().unwrap() != s[1] {
            return Err(format!("{k}.weight takes {} inputs, the layer before gives {}", s[1], sizes.last().unwrap()));
        }
        sizes.push(s[0]);
        k += 2;
    }
    if sizes.is_empty() {
        return Err("no tensor named 0.weight: not a wgtrain/nn.Sequential checkpoint".into());
    }
    Ok(sizes)
}

/// Saves the full training state: the flat parameters (`params`), the optimizer's state
/// vectors (`optim.0`, `optim.1`), and `metadata` (progress, configuration — the model
/// with it —, device).
pub fn save_state(path: &Path, params: &[f32], state: &[Vec<f32>], metadata: HashMap<String, String>) -> Result<()> {
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = vec![("params".into(), vec![params.len()], params)];
    for (i, s) in state.iter().enumerate() {
        tensors.push((format!("optim.{i}"), vec![s.len()], s));
    }
    write_atomic(path, &to_bytes(&tensors, metadata)?)
}

/// A training state read back.
pub struct State {
    pub params: Vec<f32>,
    pub state: Vec<Vec<f32>>,
    pub metadata: HashMap<String, String>,
}

/// Loads a file written by [`save_state`], checking names, types and lengths.
pub fn load_state(path: &Path) -> Result<State> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_state(path, &bytes)
}

/// [`load_state`] on bytes already read (`path` is for messages).
pub fn parse_state(path: &Path, bytes: &[u8]) -> Result<State> {
    let fail = |what: String| Error::format(path, what);
    let st = SafeTensors::deserialize(bytes).map_err(|e| fail(format!("not a valid safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| fail(format!("bad safetensors header: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let flat = |name: &str, m: Option<usize>| -> Result<Vec<f32>> {
        let t = st.tensor(name).map_err(|_| fail(format!("tensor {name} is missing")))?;
        let m = m.unwrap_or(t.shape().first().copied().unwrap_or(0));
        if t.dtype() != Dtype::F32 || t.shape() != [m] {
            return Err(fail(format!("tensor {name} is {:?} {:?}, expected F32 [{m}]", t.dtype(), t.shape())));
        }
        Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let params = flat("params", None)?;
    let mut state = Vec::new();
    while st.tensor(&format!("optim.{}", state.len())).is_ok() {
        state.push(flat(&format!("optim.{}", state.len()), Some(params.len()))?);
    }
    Ok(State { params, state, metadata })
}
