//! Weights in safetensors, named as PyTorch's `nn.Sequential(Linear, ReLU, Linear, …)`
//! names them (`0.weight [out, in]`, `0.bias [out]`, `2.weight`, …), so
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads them. Metadata holds
//! the layer sizes, class names and whatever the caller adds. Files are written
//! atomically: a temporary file beside the target, fsync'd, then renamed over it.

use crate::error::{Error, Result};
use crate::files::write_atomic;
use crate::model::Mlp;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key of the layer sizes (JSON), in every file written here.
pub const SIZES_KEY: &str = "wgtrain.sizes";
/// The metadata key of the layer list in PyTorch's terms ([`Mlp::torch_layers`]), in every
/// weights file.
pub const MODEL_KEY: &str = "wgtrain.model";

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

/// Saves the flat parameter vector of `mlp` as PyTorch-named tensors.
pub fn save_weights(path: &Path, mlp: &Mlp, params: &[f32], mut metadata: HashMap<String, String>) -> Result<()> {
    if params.len() != mlp.param_count() {
        return Err(Error::shape("save_weights", format!("{} parameters", mlp.param_count()), params.len()));
    }
    metadata.insert(SIZES_KEY.into(), serde_json::to_string(&mlp.sizes).expect("sizes serialise"));
    metadata.insert(MODEL_KEY.into(), mlp.torch_layers().to_string());
    metadata.insert("format".into(), "pt".into());
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        mlp.tensors().into_iter().map(|(n, s, r)| (n, s, &params[r])).collect();
    write_atomic(path, &to_bytes(&tensors, metadata)?)
}

/// A loaded weights file: the network, its flat parameters, and the metadata.
pub struct Weights {
    pub mlp: Mlp,
    pub params: Vec<f32>,
    pub metadata: HashMap<String, String>,
}

/// Loads a file written by [`save_weights`] (or any safetensors file holding an
/// `nn.Sequential` of Linear layers in f32), checking every name, shape and type.
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
    // The layer sizes follow from the weight shapes: 0.weight [h1, d], 2.weight [h2, h1], …
    let mut sizes = Vec::new();
    let mut k = 0;
    while let Ok(t) = st.tensor(&format!("{k}.weight")) {
        let s = t.shape();
        if s.len() != 2 {
            return Err(fail(format!("{k}.weight has shape {s:?}, expected [out, in]")));
        }
        if sizes.is_empty() {
            sizes.push(s[1]);
        } else if *sizes.last().unwrap() != s[1] {
            return Err(fail(format!(
                "{k}.weight takes {} inputs, the layer before gives {}",
                s[1],
                sizes.last().unwrap()
            )));
        }
        sizes.push(s[0]);
        k += 2;
    }
    if sizes.is_empty() {
        return Err(fail("no tensor named 0.weight: not a wgtrain/nn.Sequential MLP checkpoint".into()));
    }
    let mlp = Mlp::new(sizes).map_err(|e| fail(e.to_string()))?;
    let mut params = vec![0.0f32; mlp.param_count()];
    for (name, shape, range) in mlp.tensors() {
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
    Ok(Weights { mlp, params, metadata })
}

/// Saves the full training state: the flat parameters (`params`), the optimizer's state
/// vectors (`optim.0`, `optim.1`), and `metadata` (progress, configuration, device).
pub fn save_state(
    path: &Path,
    mlp: &Mlp,
    params: &[f32],
    state: &[Vec<f32>],
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    metadata.insert(SIZES_KEY.into(), serde_json::to_string(&mlp.sizes).expect("sizes serialise"));
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = vec![("params".into(), vec![params.len()], params)];
    for (i, s) in state.iter().enumerate() {
        tensors.push((format!("optim.{i}"), vec![s.len()], s));
    }
    write_atomic(path, &to_bytes(&tensors, metadata)?)
}

/// A training state read back.
pub struct State {
    pub mlp: Mlp,
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
    let sizes: Vec<usize> = metadata
        .get(SIZES_KEY)
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| fail("metadata `wgtrain.sizes` is missing or unreadable".into()))?;
    let mlp = Mlp::new(sizes).map_err(|e| fail(e.to_string()))?;
    let m = mlp.param_count();
    let flat = |name: &str| -> Result<Vec<f32>> {
        let t = st.tensor(name).map_err(|_| fail(format!("tensor {name} is missing")))?;
        if t.dtype() != Dtype::F32 || t.shape() != [m] {
            return Err(fail(format!("tensor {name} is {:?} {:?}, expected F32 [{m}]", t.dtype(), t.shape())));
        }
        Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let params = flat("params")?;
    let mut state = Vec::new();
    while st.tensor(&format!("optim.{}", state.len())).is_ok() {
        state.push(flat(&format!("optim.{}", state.len()))?);
    }
    Ok(State { mlp, params, state, metadata })
}
