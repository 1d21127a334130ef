//! The network on the device: every buffer that lives across steps allocated once,
//! every step's dispatches recorded once per (table, batch size, mode) and replayed,
//! one command encoder and one submit per step, metrics summed on the device and read
//! once per logging interval.
//!
//! Runs of steps ([`GpuNet::train_steps`]) go in one submission: each step of a run
//! reads its batch indices and optimizer block from its own slot of a ring of
//! [`RUN_SLOTS`] (a `queue.write_buffer` lands before the whole submission, so steps
//! cannot share one), and otherwise records the very dispatches of a single step, in the
//! same order: the results are bit-identical to one submission per step.
//!
//! The model runs as its sequence of [`Node`]s, mirroring `cpu::net` dispatch for op:
//! node `i` reads activation `i` (the gathered input `x` for `i = 0`) and writes
//! `acts[i]`; `dz[i]` is the gradient with respect to node `i`'s output (before a fused
//! ReLU). A training step, in one compute pass:
//!
//! 1. `gather_u8`/`gather_f32` of the batch rows into `x`;
//! 2. per Linear node `transpose` (`Wᵀ` for the forward product), for batches of more than
//!    [`SMALL_BATCH`] rows (smaller ones read `W` itself, `gemm_nt_row`);
//! 3. forward, node by node: Linear `fc_forward` (bias and ReLU fused; where
//!    [`Gemm::transposes_a`], after a `transpose` of its input into `a_t`, which the
//!    product reads as `Xᵀ`), Conv2d
//!    `conv2d_forward` (bias and ReLU fused) or, for a convolution that takes im2col
//!    (for batches up to [`im2col_batch`]), `conv_im2col`, `transpose`, the `fc_forward` GEMM over the
//!    patches (bias and ReLU fused) and `conv_rows_to_nchw`; MaxPool2d
//!    `maxpool2d_forward` (argmax kept per node), ReLU `relu_forward`, Dropout
//!    `dropout_forward` (masks keyed by the node's seed, [`Model::dropout_seed`], the
//!    epoch and each row's index in the data set; in evaluation the node is the identity and its output is its input
//!    buffer);
//! 4. `softmax_xent` (loss and `dZ` of the logits), `accumulate_stats`;
//! 5. backward, last node first: Linear `fc_backward_weights`, `fc_backward_bias`,
//!    `fc_backward_input` (like the forward product, from `dZᵀ` in `a_t` where
//!    [`Gemm::transposes_a`]); Conv2d `conv2d_backward_weights`, `conv2d_backward_bias`,
//!    `conv2d_backward_input` (by im2col: `conv_nchw_to_rows`, the
//!    `fc_backward_weights` GEMM, `conv2d_backward_bias`, the `fc_backward_input` GEMM
//!    into the patches' buffer and `conv_col2im`) — both with the mask `[acts[i−1] > 0]`
//!    fused when node `i−1` has a fused ReLU; MaxPool2d `maxpool2d_backward` and Dropout
//!    `dropout_backward` (into a scratch, then `relu_backward` applies that mask where
//!    needed); ReLU `relu_backward`; node 0 computes no input gradient;
//! 6. `optimizer_update` over the flat parameter buffer.
//!
//! In mixed precision ([`Precision::Mixed`]) step 1 is followed by `cast_f16` of the
//! parameters into their f16 copy, step 2's `transpose` writes `Wᵀ` in f16, each Linear
//! node's forward product is preceded by `cast_f16` of its input, and its three products
//! read the f16 copies ([`Operands`]: `X`, `Wᵀ` or `W` in the forward, `X` in the weight
//! gradient, `W` in the input gradient; `dZ`, the outputs and everything else f32). An
//! im2col convolution's GEMMs do the same with its patches (`cast_f16` after
//! `conv_im2col`) and its weights ([`HalfOperands`]); the implicit convolution kernels,
//! max-pooling, dropout and the rest stay f32.
//!
//! A fused SGD step ([`GpuNet::fused_sgd`]: plain SGD in f32, at most [`SMALL_BATCH`] rows, an
//! MLP whose layers' rows are whole vec4s) has no step 6: in step 5 each Linear node runs
//! `fc_backward_input`, then `gemm_tn_row_sgd` (`fc_sgd_step`), which updates its weights
//! and bias in place with the very operations of `fc_backward_weights`,
//! `fc_backward_bias` and `optimizer_update`, once the input gradient has read `W`.
//!
//! (The op names of the table in [`crate::gpu::kernels`].) Weights and biases of every
//! node live in the flat parameter buffer at the node's `w_off`/`b_off`, their gradients
//! at the same offsets of the gradient buffer.
//!
//! Longer than ~500 lines for a reason: the buffers, the recorded steps, the rings of
//! runs, evaluation and read-back are one struct's methods over the same buffers.

use crate::data::augment::Draws;
use crate::error::{Error, Result};
use crate::gpu::buffers::{map_read, map_read_into, read, storage, storage_init, uniform};
use crate::gpu::conv_im2col::{im2col_batch, HalfOperands, Im2col};
use crate::gpu::conv_kernels::{AugmentParams, ConvParams, DropoutParams, PoolParams};
use crate::gpu::gemm::*;
use crate::gpu::kernels::*;
use crate::gpu::pipeline::*;
use crate::gpu::Gpu;
use crate::model::{Model, Node, Op, Shape};
use crate::optim::{OptimKind, OptimStep};
use std::collections::{HashMap, VecDeque};

/// Packs bytes little-endian, four to a `u32`, zero padded (how `gather_u8` and
/// `gather_u8_unaligned` read them).
pub fn pack_bytes(src: &[u8]) -> Vec<u32> {
    src.chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// Sample features as they travel: bytes (pixels) or `f32`.
#[derive(Clone, Copy, Debug)]
pub enum Features<'a> {
    U8(&'a [u8]),
    F32(&'a [f32]),
}

impl Features<'_> {
    pub fn len(&self) -> usize {
        match self {
            Features::U8(v) => v.len(),
            Features::F32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A table of samples on the device: features `[rows, width]` and labels `[rows]`.
struct Table {
    src: wgpu::Buffer,
    labels: wgpu::Buffer,
    /// A streamed table's `[rows]` data-set indices of the rows it holds (dropout's
    /// keys); `None` for a resident table, whose batch indices are the data-set indices.
    keys: Option<wgpu::Buffer>,
    rows: usize,
    bytes: bool,
}

/// Refers to a table added with [`GpuNet::add_table`] or [`GpuNet::add_stream_table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableId(usize);

/// What a recorded segment does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    /// Forward, loss, metrics, backward; gradients overwritten, or added when
    /// `accumulate`; `scale_bits` is the f32 `scale` of `dZ`.
    Grad { accumulate: bool, scale_bits: u32 },
    /// A fused SGD step ([`GpuNet::fused_sgd`]): forward, loss, metrics, and a backward
    /// pass that updates each layer in place (`fc_sgd_step`) instead of storing its weight
    /// gradient for `optimizer_update`; `scale_bits` as in `Grad`.
    SgdStep { scale_bits: u32 },
    /// Forward, loss and metrics only.
    Eval,
}

/// Steps one submission carries at most (the slots of a [`Ring`]).
pub const RUN_SLOTS: usize = 64;
/// Batches larger than this go one submission per step even in a run: their compute
/// dwarfs a submission, and a ring of their indices would not be small.
pub const RUN_MAX_BATCH: usize = 256;

/// Per-step inputs of up to [`RUN_SLOTS`] steps of one (table, batch size): slot `s`
/// holds step `s`'s batch indices and optimizer block, bound by its own step (gather,
/// dropout keys) and optimizer dispatches (made once).
struct Ring {
    idx: wgpu::Buffer,
    idx_stride: u64,
    optim: wgpu::Buffer,
    optim_stride: u64,
    steps: Vec<Vec<Dispatch>>,
    optimizers: Vec<Dispatch>,
}

/// The element type of the matrix products' operands (`--precision`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// The matrix products of the Linear nodes and of the convolutions that take im2col
    /// read f16 copies of their input (or patches) and of the weights (made every step by
    /// `cast_f16` and an f16 transpose), widen them to f32 and accumulate in f32; the
    /// weights (master copy), gradients, optimizer state and every other op stay f32 (the
    /// implicit convolution kernels too). GPU only, on adapters with `SHADER_F16`.
    Mixed,
}

/// Mixed precision's f16 copies ([`Precision::Mixed`]), rewritten every step.
struct HalfCopies {
    /// `[param_count]`: the parameter vector in f16 (`W` of each Linear and im2col Conv2d
    /// node at its `w_off`), cast at the start of every step.
    params: wgpu::Buffer,
    /// Each Linear and im2col Conv2d node's `Wᵀ` at `wt_offsets[i]`, as `GpuNet::wt`.
    wt: wgpu::Buffer,
    /// Each Linear node's input `[B, IN]`, or an im2col Conv2d node's patches
    /// `[B·H_out·W_out, C_in·k·k]` (`None` for the other nodes), cast before its forward
    /// product and read again by its weight gradient.
    inputs: Vec<Option<wgpu::Buffer>>,
}

impl HalfCopies {
    /// Node `i`'s f16 input (a Linear node's) or patches (an im2col Conv2d node's).
    fn input(&self, i: usize) -> &wgpu::Buffer {
        self.inputs[i].as_ref().expect("a Linear or im2col node's f16 input")
    }
}

/// The network's device state and its recorded steps.
pub struct GpuNet<'g> {
    gpu: &'g Gpu,
    pub model: Model,
    pub max_batch: usize,
    kind: OptimKind,
    params: wgpu::Buffer,
    /// The f16 copies of mixed precision (`None` in f32).
    half: Option<HalfCopies>,
    /// Each Linear node's `Wᵀ: [IN, OUT]` at `wt_offsets[i]` (refreshed at the start of
    /// every step of more than [`SMALL_BATCH`] rows), and each im2col Conv2d node's `Wᵀ: [C_in·k·k, C_out]` (refreshed by its
    /// forward); `None` for the other nodes. In mixed precision only the offsets serve
    /// (the buffer is 16 bytes; `HalfCopies::wt` holds the f16 `Wᵀ` at them).
    wt: wgpu::Buffer,
    wt_offsets: Vec<Option<usize>>,
    grads: wgpu::Buffer,
    s1: wgpu::Buffer,
    s2: wgpu::Buffer,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    idx: wgpu::Buffer,
    acts: Vec<wgpu::Buffer>,
    dz: Vec<wgpu::Buffer>,
    /// `[B, out_len_i]` argmax of each MaxPool2d node (`None` for the others).
    argmax: Vec<Option<wgpu::Buffer>>,
    /// `[B·H_out·W_out, C_in·k·k]` patches of each im2col Conv2d node (`None` for the
    /// others), overwritten by their gradient in the backward pass.
    cols: Vec<Option<wgpu::Buffer>>,
    /// The largest batch each node runs through im2col (0: never; see [`im2col_batch`]).
    im2col_rows: Vec<usize>,
    /// `[B·H_out·W_out, C_out]`: an im2col Conv2d node's output, or its gradient, as the
    /// GEMMs' rows (the largest such node's size; 16 bytes when there is none).
    conv_rows: wgpu::Buffer,
    /// `[B, widest]`: a MaxPool2d or Dropout node's routed gradient before the mask of a
    /// fused ReLU before it (16 bytes when no node needs one).
    scratch: wgpu::Buffer,
    /// `[max(IN, OUT), B]` of the widest Linear node: a Linear node's input, or its output's
    /// gradient, transposed for a product that [`Gemm::transposes_a`] (16 bytes without
    /// Linear nodes, in mixed precision, or for batches of at most [`SMALL_BATCH`] rows,
    /// where none does).
    a_t: wgpu::Buffer,
    /// The draws of the training steps: dropout's seed and epoch, and the augmentation
    /// ([`Self::begin_epoch`]).
    draws: Draws,
    /// `[B, d]`: the augmented input batch (16 bytes without augmentation).
    x_aug: wgpu::Buffer,
    /// Every recorded parameter block keyed by the seed and epoch, rewritten by
    /// [`Self::begin_epoch`].
    keyed: Vec<Keyed>,
    loss: wgpu::Buffer,
    correct: wgpu::Buffer,
    stats: wgpu::Buffer,
    stats_staging: wgpu::Buffer,
    /// The gradient's read-back buffer, made on the first [`Self::read_grads_into`] (a
    /// data-parallel step reads its share's gradient every step).
    grads_staging: std::sync::OnceLock<wgpu::Buffer>,
    unused: wgpu::Buffer,
    optim_u: wgpu::Buffer,
    optimizer: Dispatch,
    tables: Vec<Table>,
    segments: HashMap<(TableId, usize, Mode), Vec<Dispatch>>,
    rings: HashMap<(TableId, usize), Ring>,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

/// Submissions allowed in flight before the host waits for the oldest.
const MAX_IN_FLIGHT: usize = 2;

impl<'g> GpuNet<'g> {
    /// Allocates everything for batches of up to `max_batch` samples, with `params` as
    /// the initial flat parameter vector and zeroed optimizer state, the matrix products
    /// in `precision` (mixed: an error where the adapter has no `SHADER_F16`).
    pub fn new(
        gpu: &'g Gpu,
        model: &Model,
        params: &[f32],
        kind: OptimKind,
        max_batch: usize,
        precision: Precision,
    ) -> Result<Self> {
        let m = model.param_count();
        if params.len() != m {
            return Err(Error::shape("GpuNet::new", format!("{m} parameters"), params.len()));
        }
        Self::check_fits(gpu, model, max_batch)?;
        let f = 4u64;
        let b = max_batch as u64;
        let params_buf = storage_init(gpu, "parameters", params)?;
        let grads = storage(gpu, "gradients", m as u64 * f)?;
        // Each layer's Wᵀ starts on a multiple of 8 floats, as the vec4 kernels (4) and the
        // u64 ones (8) load it.
        let mut wt_offsets = Vec::new();
        let mut wt_len = 0;
        // The largest batch each convolution runs through im2col (0: never).
        let im2col_rows: Vec<usize> = model
            .nodes()
            .iter()
            .map(|n| if let Op::Conv2d(s) = n.op { im2col_batch(gpu, &s, max_batch) } else { 0 })
            .collect();
        for (n, &cap) in model.nodes().iter().zip(&im2col_rows) {
            let at = wt_len;
            wt_offsets.push(match n.op {
                Op::Linear { inp, out } => {
                    wt_len += (inp * out).next_multiple_of(8);
                    Some(at)
                }
                Op::Conv2d(s) if cap > 0 => {
                    wt_len += s.weight_len().next_multiple_of(8);
                    Some(at)
                }
                _ => None,
            });
        }
        // Mixed precision's products read the f16 Wᵀ of HalfCopies instead.
        let wt_bytes = if precision == Precision::Mixed { 16 } else { wt_len as u64 * f };
        let wt = storage(gpu, "transposed weights", wt_bytes)?;
        let state = |i: usize, name: &str| storage(gpu, name, if kind.state_vectors() > i { m as u64 * f } else { 16 });
        let s1 = state(0, "optimizer state 1")?;
        let s2 = state(1, "optimizer state 2")?;
        let x = storage(gpu, "input batch", b * model.inputs() as u64 * f)?;
        let y = storage(gpu, "labels batch", b * 4)?;
        let idx = storage(gpu, "batch indices", b * 4)?;
        let mut acts = Vec::new();
        let mut dz = Vec::new();
        let mut argmax = Vec::new();
        let mut cols = Vec::new();
        let mut rows_len = 4;
        for (i, n) in model.nodes().iter().enumerate() {
            let path = im2col_path(n, im2col_rows[i], wt_offsets[i]);
            cols.push(match path {
                Some(p) => Some(storage(gpu, "im2col patches", p.cols_len() as u64 * f)?),
                None => None,
            });
            rows_len = rows_len.max(path.map_or(0, |p| p.out_rows_len()));
            let bytes = b * n.out_len as u64 * f;
            acts.push(storage(gpu, "activations", bytes)?);
            dz.push(storage(gpu, "activation gradients", bytes)?);
            let pool = matches!(n.op, Op::MaxPool2d(_));
            argmax.push(if pool { Some(storage(gpu, "max-pooling argmax", bytes)?) } else { None });
        }
        let nodes = model.nodes();
        let scratch_bytes =
            if (1..nodes.len()).any(|i| masked_after_routing(nodes, i)) { b * model.widest() as u64 * f } else { 16 };
        let scratch = storage(gpu, "routed gradient scratch", scratch_bytes)?;
        // Sized for the widest Linear node's input or output (a product transposes neither
        // in mixed precision or for batches of at most SMALL_BATCH rows).
        let linear_widest = linear_widest_of(model);
        let a_t_bytes = if precision == Precision::F32 && max_batch > SMALL_BATCH && linear_widest > 0 {
            b * linear_widest as u64 * f
        } else {
            16
        };
        let a_t = storage(gpu, "transposed product input", a_t_bytes)?;
        let conv_rows = storage(gpu, "im2col output rows", rows_len as u64 * f)?;
        let loss = storage(gpu, "per-sample loss", b * f)?;
        let correct = storage(gpu, "per-sample correct", b * 4)?;
        let stats_size = std::mem::size_of::<Stats>() as u64;
        let stats = storage(gpu, "metrics", stats_size)?;
        let stats_staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("metrics read-back"),
            size: stats_size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let half = match precision {
            Precision::F32 => None,
            Precision::Mixed => {
                gpu.kernels.half()?;
                let h = 2u64;
                let mut inputs = Vec::new();
                for (i, n) in model.nodes().iter().enumerate() {
                    let patches = im2col_path(n, im2col_rows[i], wt_offsets[i]).map(|p| p.cols_len() as u64);
                    inputs.push(match (n.op, patches) {
                        (Op::Linear { inp, .. }, _) => Some(storage(gpu, "f16 layer input", b * inp as u64 * h)?),
                        (Op::Conv2d(_), Some(len)) => Some(storage(gpu, "f16 im2col patches", len * h)?),
                        _ => None,
                    });
                }
                Some(HalfCopies {
                    params: storage(gpu, "f16 parameters", m as u64 * h)?,
                    wt: storage(gpu, "f16 transposed weights", wt_len as u64 * h)?,
                    inputs,
                })
            }
        };
        let unused = storage(gpu, "unused", 16)?;
        let optim_u = uniform(gpu, "optimizer", &OptimParams::default());
        let optimizer = gpu.kernels.optimizer_update(kind).dispatch(
            &gpu.device,
            &[&optim_u, &grads, &stats, &params_buf, &s1, &s2],
            linear_groups(m.div_ceil(4), LINEAR_WG as usize),
        );
        gpu.check_errors()?;
        Ok(GpuNet {
            gpu,
            model: model.clone(),
            max_batch,
            kind,
            params: params_buf,
            half,
            wt,
            wt_offsets,
            grads,
            s1,
            s2,
            x,
            y,
            idx,
            acts,
            dz,
            argmax,
            cols,
            im2col_rows,
            conv_rows,
            scratch,
            a_t,
            draws: Draws::default(),
            x_aug: storage(gpu, "augmented input batch", 16)?,
            keyed: Vec::new(),
            loss,
            correct,
            stats,
            stats_staging,
            grads_staging: std::sync::OnceLock::new(),
            unused,
            optim_u,
            optimizer,
            tables: Vec::new(),
            segments: HashMap::new(),
            rings: HashMap::new(),
            in_flight: VecDeque::new(),
        })
    }

    /// The matrix products' precision.
    pub fn precision(&self) -> Precision {
        if self.half.is_some() {
            Precision::Mixed
        } else {
            Precision::F32
        }
    }

    /// Checks, before anything is allocated, that a network of `model` with batches of up
    /// to `max_batch` fits the adapter's limits (bindings, workgroup counts).
    pub fn check_fits(gpu: &Gpu, model: &Model, max_batch: usize) -> Result<()> {
        if max_batch == 0 {
            return Err(Error::invalid("batch", 0, "a batch of at least 1 sample"));
        }
        let f = 4u64;
        gpu.check_binding("the parameter vector", model.param_count() as u64 * f)?;
        gpu.check_binding("one batch of the widest layer's activations", (max_batch * model.widest()) as u64 * f)?;
        gpu.check_workgroups("the batch is one workgroup row per sample in the input gather", max_batch as u64)?;
        gpu.check_workgroups(
            "the widest layer's matrix products",
            (model.widest().max(max_batch) as u64).div_ceil(u64::from(4 * GEMM_WG)),
        )?;
        let linear_in = |n: &Node| match n.op {
            Op::Linear { inp, .. } => inp,
            _ => 1,
        };
        let widest_in = model.nodes().iter().map(linear_in).max().unwrap_or(1);
        gpu.check_workgroups("a layer's input width (a workgroup row per input when transposing W)", widest_in as u64)?;
        // The element-wise kernels (pooling, ReLU, dropout) fold their 1-D grid into y.
        let elementwise = linear_groups(max_batch * model.widest(), 64)[1];
        gpu.check_workgroups("the widest activation's element-wise grid (folded into y)", u64::from(elementwise))?;
        for (i, n) in model.nodes().iter().enumerate() {
            let cap = if let Op::Conv2d(s) = n.op { im2col_batch(gpu, &s, max_batch) } else { 0 };
            if let Some(p) = im2col_path(n, cap, Some(0)).filter(|_| cap > 0) {
                let rows = (p.rows() as u64).div_ceil(u64::from(VEC4_ROWS * GEMM_WG));
                gpu.check_workgroups(&format!("node {i}'s im2col GEMM rows"), rows)?;
            }
            if let Op::Conv2d(s) = n.op {
                let g = ConvParams::new(&s.with_batch(max_batch), 0, n.w_off, n.b_off).groups();
                let y = [g.forward, g.backward_input, g.backward_weights, g.backward_bias].map(|g| g[1]);
                let what = format!("node {i}'s convolution grids (folded into y)");
                gpu.check_workgroups(&what, u64::from(y.into_iter().max().unwrap_or(1)))?;
            }
        }
        Ok(())
    }

    /// Uploads a whole table (resident mode): `features: [rows, width]`, `labels: [rows]`.
    pub fn add_table(&mut self, features: Features, labels: &[u32]) -> Result<TableId> {
        let width = self.model.inputs();
        if features.len() != labels.len() * width {
            let expected =
                format!("{} feature values ({} labels of width {width})", labels.len() * width, labels.len());
            return Err(Error::shape("GpuNet::add_table", expected, features.len()));
        }
        let src = match features {
            Features::U8(v) => storage_init(self.gpu, "resident samples (u8)", &pack_bytes(v))?,
            Features::F32(v) => storage_init(self.gpu, "resident samples (f32)", v)?,
        };
        let rows = labels.len();
        let labels = storage_init(self.gpu, "resident labels", labels)?;
        let bytes = matches!(features, Features::U8(_));
        self.tables.push(Table { src, labels, keys: None, rows, bytes });
        Ok(TableId(self.tables.len() - 1))
    }

    /// A table of `max_batch` rows that the host overwrites every step (streaming mode),
    /// with features of `bytes` (u8) or f32.
    pub fn add_stream_table(&mut self, bytes: bool) -> Result<TableId> {
        let rows = self.max_batch;
        let per = if bytes { 1 } else { 4 };
        let src = storage(self.gpu, "streamed batch", (rows * self.model.inputs() * per) as u64)?;
        let labels = storage(self.gpu, "streamed labels", (rows * 4) as u64)?;
        let keys = Some(storage(self.gpu, "streamed data-set indices", (rows * 4) as u64)?);
        self.tables.push(Table { src, labels, keys, rows, bytes });
        Ok(TableId(self.tables.len() - 1))
    }

    /// Writes one streamed batch into a stream table: `features: [B, width]`,
    /// `labels: [B]`, and `keys: [B]`, each row's index in its data set (what dropout
    /// draws its masks by; the device then reads the rows at indices `0..B`).
    pub fn write_stream(&self, table: TableId, features: Features, labels: &[u32], keys: &[u32]) -> Result<()> {
        let t = &self.tables[table.0];
        if labels.len() > t.rows || features.len() != labels.len() * self.model.inputs() || keys.len() != labels.len() {
            let expected = format!("at most {} labels, as many keys and rows of features", t.rows);
            let got = format!("{} labels, {} keys, {} feature values", labels.len(), keys.len(), features.len());
            return Err(Error::shape("GpuNet::write_stream", expected, got));
        }
        let Some(key_buf) = &t.keys else {
            return Err(Error::precondition("GpuNet::write_stream", "a table made by add_stream_table"));
        };
        self.gpu.queue.write_buffer(key_buf, 0, bytemuck::cast_slice(keys));
        if t.bytes != matches!(features, Features::U8(_)) {
            return Err(Error::precondition("GpuNet::write_stream", "features of the table's element type"));
        }
        match features {
            Features::U8(v) => self.gpu.queue.write_buffer(&t.src, 0, bytemuck::cast_slice(&pack_bytes(v))),
            Features::F32(v) => self.gpu.queue.write_buffer(&t.src, 0, bytemuck::cast_slice(v)),
        }
        self.gpu.queue.write_buffer(&t.labels, 0, bytemuck::cast_slice(labels));
        Ok(())
    }

    /// One mini-batch SGD step on rows `idx` of `table`: the gradient of the batch's mean
    /// loss, then the update `opt`. Nothing is read back.
    pub fn train_step(&mut self, table: TableId, idx: &[u32], opt: &OptimStep) -> Result<()> {
        self.submit(table, idx, self.step_mode(idx.len()), Some(opt))
    }

    /// Whether a training step of `batch` rows fuses the update into its backward pass:
    /// plain SGD in f32, at most [`SMALL_BATCH`] rows, and every node with parameters a Linear
    /// one whose weight gradient takes `gemm_tn_row` ([`Gemm::tn_row`]). Such a step runs
    /// `fc_sgd_step` per layer and no `optimizer_update`, with the same bits, and stores
    /// no gradient ([`Self::read_grads`]).
    pub fn fused_sgd(&self, batch: usize) -> bool {
        self.kind == OptimKind::Sgd
            && self.half.is_none()
            && self.model.nodes().iter().all(|n| match n.op {
                Op::Linear { inp, out } => GemmParams::fc_backward_weights(batch, inp, out, n.w_off, false).tn_row(),
                Op::Conv2d(_) => false,
                Op::MaxPool2d(_) | Op::ReLU | Op::Dropout { .. } => true,
            })
    }

    /// The mode of a training step of `batch` rows (fused or not, [`Self::fused_sgd`]).
    fn step_mode(&self, batch: usize) -> Mode {
        let scale_bits = (1.0 / batch as f32).to_bits();
        if self.fused_sgd(batch) {
            Mode::SgdStep { scale_bits }
        } else {
            Mode::Grad { accumulate: false, scale_bits }
        }
    }

    /// Adds `scale · Σ_n ∇ loss_n` over rows `idx` into the gradient (overwriting it when
    /// `first`): one chunk of a full-batch gradient. No update.
    pub fn accumulate_gradient(&mut self, table: TableId, idx: &[u32], scale: f32, first: bool) -> Result<()> {
        self.submit(table, idx, Mode::Grad { accumulate: !first, scale_bits: scale.to_bits() }, None)
    }

    /// Sets the draws of the training steps from now on: dropout's seed and epoch
    /// (`cpu::net::Draw`'s) and the augmentation (`data::augment`). Rewrites every recorded
    /// keyed parameter block; a change of augmentation re-records the steps (they gain or
    /// lose the `augment` dispatch).
    pub fn begin_epoch(&mut self, d: &Draws) -> Result<()> {
        if d.augment != self.draws.augment {
            if !d.augment.is_none() {
                let Shape::Image { .. } = self.model.input else {
                    return Err(Error::precondition("GpuNet::begin_epoch", "image inputs to augment"));
                };
                let bytes = (self.max_batch * self.model.inputs() * 4) as u64;
                self.x_aug = storage(self.gpu, "augmented input batch", bytes)?;
            }
            self.segments.clear();
            self.rings.clear();
            self.keyed.clear();
        }
        self.draws = *d;
        for k in &mut self.keyed {
            k.rekey(self.gpu, &self.model, d.seed, d.epoch);
        }
        Ok(())
    }

    /// Applies the update `opt` with the gradient accumulated so far.
    pub fn apply_update(&mut self, opt: &OptimStep) -> Result<()> {
        self.write_optim(opt)?;
        let mut enc = self.encoder();
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("update"), timestamp_writes: None });
            record(&mut pass, std::slice::from_ref(&self.optimizer));
        }
        self.finish(enc)
    }

    /// Forward pass and loss on rows `idx` of `table`, summed into the metrics.
    pub fn eval_batch(&mut self, table: TableId, idx: &[u32]) -> Result<()> {
        self.submit(table, idx, Mode::Eval, None)
    }

    /// The logits `[B, C]` of rows `idx` of `table` (waits for the device). The batch's
    /// loss also lands in the metrics; call [`Self::take_stats`] to clear them.
    pub fn logits(&mut self, table: TableId, idx: &[u32]) -> Result<Vec<f32>> {
        self.eval_batch(table, idx)?;
        read(self.gpu, self.acts.last().expect("layers"), idx.len() * self.model.classes())
    }

    fn check_kind(&self, opt: &OptimStep) -> Result<()> {
        if opt.kind != self.kind {
            let required = format!("the optimizer the network was built for ({:?}, not {:?})", self.kind, opt.kind);
            return Err(Error::precondition("GpuNet::apply_update", required));
        }
        Ok(())
    }

    fn write_optim(&self, opt: &OptimStep) -> Result<()> {
        self.check_kind(opt)?;
        let p = OptimParams::new(self.model.param_count(), opt);
        self.gpu.queue.write_buffer(&self.optim_u, 0, bytemuck::bytes_of(&p));
        Ok(())
    }

    /// Checks that `table` exists and `idx` is a batch of its rows the buffers hold.
    fn check_batch(&self, table: TableId, idx: &[u32]) -> Result<()> {
        let batch = idx.len();
        let t = self.tables.get(table.0).ok_or_else(|| Error::precondition("GpuNet", format!("a table {table:?}")))?;
        if batch == 0 || batch > self.max_batch {
            return Err(Error::shape("GpuNet batch", format!("1..={} rows", self.max_batch), batch));
        }
        if let Some(&bad) = idx.iter().find(|&&i| i as usize >= t.rows) {
            return Err(Error::shape("GpuNet batch", format!("rows below {}", t.rows), format!("row {bad}")));
        }
        Ok(())
    }

    fn submit(&mut self, table: TableId, idx: &[u32], mode: Mode, opt: Option<&OptimStep>) -> Result<()> {
        let batch = idx.len();
        self.check_batch(table, idx)?;
        if let Some(opt) = opt {
            self.write_optim(opt)?;
        }
        self.gpu.queue.write_buffer(&self.idx, 0, bytemuck::cast_slice(idx));
        if !self.segments.contains_key(&(table, batch, mode)) {
            let mut keyed = Vec::new();
            let (idx, optim) = (whole(&self.idx), whole(&self.optim_u));
            let seg = self.record_segment(table, batch, mode, idx, optim, &mut keyed)?;
            self.keyed.extend(keyed);
            self.segments.insert((table, batch, mode), seg);
        }
        let seg = &self.segments[&(table, batch, mode)];
        let mut enc = self.encoder();
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("step"), timestamp_writes: None });
            record(&mut pass, seg);
            if opt.is_some() && !matches!(mode, Mode::SgdStep { .. }) {
                record(&mut pass, std::slice::from_ref(&self.optimizer));
            }
        }
        self.finish(enc)
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") })
    }

    /// Submits, keeping at most `MAX_IN_FLIGHT` submissions queued.
    fn finish(&mut self, enc: wgpu::CommandEncoder) -> Result<()> {
        let index = self.gpu.queue.submit([enc.finish()]);
        self.in_flight.push_back(index);
        while self.in_flight.len() > MAX_IN_FLIGHT {
            let oldest = self.in_flight.pop_front().expect("non-empty");
            self.gpu
                .device
                .poll(wgpu::PollType::Wait { submission_index: Some(oldest), timeout: None })
                .map_err(|e| Error::Gpu(format!("waiting for a step: {e}")))?;
        }
        self.gpu.check_errors()
    }

    /// The input gather of `batch` rows of `table` at the indices `idx`, with its
    /// parameter block `u` (see [`uniform_gather`]).
    fn gather_dispatch(&self, table: TableId, batch: usize, u: &wgpu::Buffer, idx: wgpu::BufferBinding) -> Dispatch {
        let t = &self.tables[table.0];
        let gp = GatherParams { batch: batch as u32, width: self.model.inputs() as u32, _pad: [0; 2] };
        let (gather, groups) = gp.kernel(&self.gpu.kernels, t.bytes);
        let bindings = [whole(u), whole(&t.src), whole(&t.labels), idx, whole(&self.x), whole(&self.y)];
        gather.dispatch_ranges(&self.gpu.device, &bindings, groups)
    }

    /// The ring of `RUN_SLOTS` steps of `batch` rows of `table` in `mode` (made once);
    /// its keyed parameter blocks are added to `keyed`.
    fn make_ring(&self, table: TableId, batch: usize, mode: Mode, keyed: &mut Vec<Keyed>) -> Result<Ring> {
        let gpu = self.gpu;
        let slot = |bytes: u64, align: u32| bytes.next_multiple_of(u64::from(align).max(16));
        let idx_stride = slot(batch as u64 * 4, gpu.limits.min_storage_buffer_offset_alignment);
        let optim_size = std::mem::size_of::<OptimParams>() as u64;
        let optim_stride = slot(optim_size, gpu.limits.min_uniform_buffer_offset_alignment);
        let n = RUN_SLOTS as u64;
        let idx = storage(gpu, "batch index ring", n * idx_stride)?;
        let optim = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("optimizer ring"),
            size: n * optim_stride,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let range =
            |buffer, offset, size| wgpu::BufferBinding { buffer, offset, size: std::num::NonZeroU64::new(size) };
        let update = gpu.kernels.optimizer_update(self.kind);
        let m = self.model.param_count();
        let (mut steps, mut optimizers) = (Vec::new(), Vec::new());
        for s in 0..n {
            let slot = range(&idx, s * idx_stride, batch as u64 * 4);
            let optim_slot = range(&optim, s * optim_stride, optim_size);
            steps.push(self.record_segment(table, batch, mode, slot, optim_slot, keyed)?);
            let bindings = [
                range(&optim, s * optim_stride, optim_size),
                whole(&self.grads),
                whole(&self.stats),
                whole(&self.params),
                whole(&self.s1),
                whole(&self.s2),
            ];
            optimizers.push(update.dispatch_ranges(
                &gpu.device,
                &bindings,
                linear_groups(m.div_ceil(4), LINEAR_WG as usize),
            ));
        }
        gpu.check_errors()?;
        Ok(Ring { idx, idx_stride, optim, optim_stride, steps, optimizers })
    }

    /// Mini-batch SGD steps, one per entry of `steps` (rows of `table`) and `opts`, as
    /// [`Self::train_step`] would run them one by one, but up to [`RUN_SLOTS`] consecutive
    /// steps of one batch size (up to [`RUN_MAX_BATCH`] rows) in one submission.
    pub fn train_steps(&mut self, table: TableId, steps: &[&[u32]], opts: &[OptimStep]) -> Result<()> {
        if steps.len() != opts.len() {
            return Err(Error::shape("GpuNet::train_steps", format!("{} optimizer steps", steps.len()), opts.len()));
        }
        let mut start = 0;
        while start < steps.len() {
            let batch = steps[start].len();
            if batch > RUN_MAX_BATCH {
                self.train_step(table, steps[start], &opts[start])?;
                start += 1;
                continue;
            }
            let same = steps[start..].iter().take(RUN_SLOTS).take_while(|s| s.len() == batch).count();
            self.submit_run(table, &steps[start..start + same], &opts[start..start + same])?;
            start += same;
        }
        Ok(())
    }

    /// Submits `steps` (each of the same batch size, at most [`RUN_SLOTS`]) at once.
    fn submit_run(&mut self, table: TableId, steps: &[&[u32]], opts: &[OptimStep]) -> Result<()> {
        let batch = steps[0].len();
        for idx in steps {
            self.check_batch(table, idx)?;
        }
        let mut params = Vec::with_capacity(opts.len());
        for opt in opts {
            self.check_kind(opt)?;
            params.push(OptimParams::new(self.model.param_count(), opt));
        }
        let mode = self.step_mode(batch);
        if !self.rings.contains_key(&(table, batch)) {
            let mut keyed = Vec::new();
            let ring = self.make_ring(table, batch, mode, &mut keyed)?;
            self.keyed.extend(keyed);
            self.rings.insert((table, batch), ring);
        }
        let ring = &self.rings[&(table, batch)];
        let mut idx_bytes = vec![0u8; steps.len() * ring.idx_stride as usize];
        let mut optim_bytes = vec![0u8; steps.len() * ring.optim_stride as usize];
        for (s, (idx, p)) in steps.iter().zip(&params).enumerate() {
            let at = s * ring.idx_stride as usize;
            idx_bytes[at..at + 4 * batch].copy_from_slice(bytemuck::cast_slice(idx));
            let at = s * ring.optim_stride as usize;
            optim_bytes[at..at + std::mem::size_of::<OptimParams>()].copy_from_slice(bytemuck::bytes_of(p));
        }
        self.gpu.queue.write_buffer(&ring.idx, 0, &idx_bytes);
        self.gpu.queue.write_buffer(&ring.optim, 0, &optim_bytes);
        let mut enc = self.encoder();
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("steps"), timestamp_writes: None });
            for s in 0..steps.len() {
                record(&mut pass, &ring.steps[s]);
                if !matches!(mode, Mode::SgdStep { .. }) {
                    record(&mut pass, std::slice::from_ref(&ring.optimizers[s]));
                }
            }
        }
        self.finish(enc)
    }

    /// The dispatches of one step for `batch` rows of `table` (made once, replayed), the
    /// rows' indices bound from `idx` (the gather's, and a resident table's dropout keys)
    /// and a fused SGD step's optimizer block from `optim`; each parameter block keyed by
    /// the seed and epoch is added to `keyed`. Node by node as `cpu::net::loss_and_grad`
    /// (see the module doc).
    fn record_segment(
        &self,
        table: TableId,
        batch: usize,
        mode: Mode,
        idx: wgpu::BufferBinding,
        optim: wgpu::BufferBinding,
        keyed: &mut Vec<Keyed>,
    ) -> Result<Vec<Dispatch>> {
        let gpu = self.gpu;
        let k = &gpu.kernels;
        let dev = &gpu.device;
        let nodes = self.model.nodes();
        let last = nodes.len() - 1;
        let keys = match &self.tables[table.0].keys {
            Some(keys) => whole(keys),
            None => idx.clone(),
        };
        let mut seg = vec![self.gather_dispatch(table, batch, &uniform_gather(gpu, batch, self.model.inputs()), idx)];
        // Mixed precision: the products read f16 copies of the weights (W, Wᵀ) and inputs.
        let half = match &self.half {
            Some(h) => Some((h, k.half()?)),
            None => None,
        };
        if let Some((h, kh)) = half {
            seg.push(
                kh.cast(gpu, &self.params, &h.params, self.model.param_count()).named("cast_f16 parameters".into()),
            );
        }
        // Wᵀ and W in the products' precision: (W, Wᵀ, operands of the forward, of the backward).
        let (w_in, wt_in, fwd, bwd) = match half {
            Some((h, _)) => (&h.params, &h.wt, Operands::F16, Operands::F32F16),
            None => (&self.params, &self.wt, Operands::F32, Operands::F32),
        };

        // Batches of at most SMALL_BATCH rows read W itself (gemm_nt_row).
        let transposed = batch > SMALL_BATCH;
        for (i, n) in nodes.iter().enumerate().filter(|_| transposed) {
            if let (Op::Linear { inp, out }, Some(wt_off)) = (n.op, self.wt_offsets[i]) {
                let t = TransposeParams {
                    rows: out as u32,
                    cols: inp as u32,
                    src_off: n.w_off as u32,
                    dst_off: wt_off as u32,
                };
                let d = t.dispatch(gpu, half.map(|(_, kh)| kh), &self.params, wt_in);
                seg.push(d.named(format!("layer {i} transpose")));
            }
        }

        // inputs[i]: the buffer node i reads; in evaluation a dropout node passes its input on.
        let mut inputs: Vec<&wgpu::Buffer> = Vec::with_capacity(nodes.len());
        // The dropout nodes' parameter blocks, shared by their forward and backward.
        let mut drop_u: Vec<Option<wgpu::Buffer>> = vec![None; nodes.len()];
        let mut src = &self.x;
        if let (Mode::Grad { .. } | Mode::SgdStep { .. }, false, Shape::Image { c, h, w }) =
            (mode, self.draws.augment.is_none(), self.model.input)
        {
            let (d, a) = (&self.draws, &self.draws.augment);
            let params = AugmentParams::new(batch, (c, h, w), d.seed, d.epoch, a);
            let u = uniform(gpu, "augment", &params);
            let bindings = [whole(&u), whole(&self.x), keys.clone(), whole(&self.x_aug)];
            let len = batch * self.model.inputs();
            let kernel = &k.on_demand()?.conv.augment;
            seg.push(kernel.dispatch_ranges(dev, &bindings, linear_groups(len, 256)).named("augment".into()));
            keyed.push(Keyed::Augment(u, params));
            src = &self.x_aug;
        }
        for (i, n) in nodes.iter().enumerate() {
            inputs.push(src);
            let (out, len) = (&self.acts[i], batch * n.out_len);
            // The forward product's A: the input itself, or its f16 copy.
            let x_in = match (half, n.op) {
                (Some((h, kh)), Op::Linear { inp, .. }) => {
                    let x16 = h.input(i);
                    seg.push(kh.cast(gpu, src, x16, batch * inp).named(format!("layer {i} cast_f16 input")));
                    x16
                }
                _ => src,
            };
            let d = match n.op {
                Op::Linear { inp, out: o } if !transposed => {
                    let g = GemmParams::fc_forward_w(batch, inp, o, n.w_off, n.b_off, n.relu).with_operands(fwd);
                    let u = uniform(gpu, "fc_forward", &g.params);
                    g.dispatch(gpu, &u, [x_in, w_in, &self.params, &self.unused, out])
                }
                Op::Linear { inp, out: o } => {
                    let wt_off = self.wt_offsets[i].expect("a Linear node's Wᵀ");
                    let mut g = GemmParams::fc_forward(batch, inp, o, wt_off, n.b_off, n.relu).with_operands(fwd);
                    let mut a = x_in;
                    if g.transposes_a() {
                        seg.push(self.transpose_a(src, batch, inp).named(format!("layer {i} transpose input")));
                        (g, a) = (g.a_transposed(), &self.a_t);
                    }
                    let u = uniform(gpu, "fc_forward", &g.params);
                    g.dispatch(gpu, &u, [a, wt_in, &self.params, &self.unused, out])
                }
                Op::Conv2d(_) if self.im2col_at(i, batch).is_some() => {
                    let path = self.im2col_at(i, batch).expect("an im2col node's path");
                    let cols = self.cols[i].as_ref().expect("an im2col node's patches");
                    let (p, rows) = (&self.params, &self.conv_rows);
                    let h = self.half_operands(half, i);
                    for d in path.forward(gpu, src, p, &self.wt, cols, rows, out, n.relu, &self.unused, h.as_ref())? {
                        let what = format!("layer {i} {}", d.name);
                        seg.push(d.named(what));
                    }
                    src = out;
                    continue;
                }
                Op::Conv2d(s) => {
                    let flags = if n.relu { ConvParams::RELU } else { 0 };
                    let p = ConvParams::new(&s.with_batch(batch), flags, n.w_off, n.b_off);
                    let u = uniform(gpu, "conv2d_forward", &p);
                    let kernel = &k.on_demand()?.conv.conv2d_forward;
                    kernel.dispatch(dev, &[&u, src, &self.params, &self.params, out], p.groups().forward)
                }
                Op::MaxPool2d(s) => {
                    let u = uniform(gpu, "maxpool2d_forward", &PoolParams::new(&s.with_batch(batch)));
                    let argmax = self.argmax[i].as_ref().expect("a MaxPool2d node's argmax");
                    let kernel = &k.on_demand()?.conv.maxpool2d_forward;
                    kernel.dispatch(dev, &[&u, src, argmax, out], linear_groups(len, 64))
                }
                Op::ReLU => {
                    let u = uniform(gpu, "relu_forward", &LenParams { len: len as u32, _pad: [0; 3] });
                    let kernel = &k.on_demand()?.relu_forward;
                    kernel.dispatch(dev, &[&u, src, &self.unused, out], linear_groups(len, LINEAR_WG as usize))
                }
                Op::Dropout { .. } if mode == Mode::Eval => continue,
                Op::Dropout { p } => {
                    let seed = self.model.dropout_seed(i, self.draws.seed);
                    let params = DropoutParams::new(batch, n.out_len, seed, self.draws.epoch, p);
                    let u = uniform(gpu, "dropout", &params);
                    let bindings = [whole(&u), whole(src), keys.clone(), whole(out)];
                    let kernel = &k.on_demand()?.conv.dropout_forward;
                    let d = kernel.dispatch_ranges(dev, &bindings, linear_groups(len, 256));
                    keyed.push(Keyed::Dropout(u.clone(), params, i));
                    drop_u[i] = Some(u);
                    d
                }
            };
            seg.push(d.named(format!("layer {i} {}", op_name(&n.op, "forward"))));
            src = out;
        }

        let (scale, accumulate) = match mode {
            Mode::Grad { accumulate, scale_bits } => (f32::from_bits(scale_bits), accumulate),
            Mode::SgdStep { scale_bits } => (f32::from_bits(scale_bits), false),
            Mode::Eval => (1.0 / batch as f32, false),
        };
        let classes = self.model.classes() as u32;
        let u = uniform(gpu, "softmax_xent", &SoftmaxParams { batch: batch as u32, classes, scale, _pad: 0 });
        seg.push(k.softmax_xent.dispatch(
            dev,
            &[&u, &self.acts[last], &self.y, &self.loss, &self.correct, &self.dz[last]],
            linear_groups(batch, 64),
        ));
        let u = uniform(
            gpu,
            "stats",
            &StatsParams { batch: batch as u32, first_chunk: u32::from(!accumulate), _pad: [0; 2] },
        );
        seg.push(k.accumulate_stats.dispatch(dev, &[&u, &self.loss, &self.correct, &self.stats], [1, 1, 1]));

        if mode == Mode::Eval {
            return Ok(seg);
        }
        for (i, n) in nodes.iter().enumerate().rev() {
            let (input, dz) = (inputs[i], &self.dz[i]);
            // Where node i−1 has a fused ReLU, its gradient is masked by [acts[i−1] > 0]
            // (acts[i−1] is this node's input).
            let prev_relu = i > 0 && nodes[i - 1].relu;
            let mask = if prev_relu { input } else { &self.unused };
            let name = |what: &str| format!("layer {i} {what}");
            match n.op {
                Op::Linear { inp, out } if matches!(mode, Mode::SgdStep { .. }) => {
                    // Once the input gradient has read W, W and b are updated in place
                    // (fc_sgd_step).
                    if i > 0 {
                        let g = GemmParams::fc_backward_input(batch, inp, out, n.w_off, prev_relu);
                        let u = uniform(gpu, "fc_backward_input", &g.params);
                        let at = [dz, &self.params, &self.unused, mask, &self.dz[i - 1]];
                        seg.push(g.dispatch(gpu, &u, at).named(name("fc_backward_input")));
                    }
                    let g = GemmParams::fc_sgd_step(batch, inp, out, n.w_off, n.b_off);
                    let u = uniform(gpu, "fc_sgd_step", &g.params);
                    let at =
                        [whole(&u), whole(dz), whole(input), optim.clone(), whole(&self.stats), whole(&self.params)];
                    let (_, groups) = g.kernel(k);
                    let d = k.gemm_tn_row_sgd.dispatch_ranges(dev, &at, groups);
                    seg.push(d.named(name("fc_sgd_step")));
                }
                Op::Linear { inp, out } => {
                    let g = GemmParams::fc_backward_weights(batch, inp, out, n.w_off, accumulate).with_operands(bwd);
                    let u = uniform(gpu, "fc_backward_weights", &g.params);
                    let x_in = half.map_or(input, |(h, _)| h.input(i));
                    let at = [dz, x_in, &self.unused, &self.unused, &self.grads];
                    seg.push(g.dispatch(gpu, &u, at).named(name("fc_backward_weights")));
                    let pb = BiasGradParams {
                        batch: batch as u32,
                        out: out as u32,
                        db_off: n.b_off as u32,
                        accumulate: u32::from(accumulate),
                    };
                    let u = uniform(gpu, "fc_backward_bias", &pb);
                    let d = k.fc_backward_bias.dispatch(dev, &[&u, dz, &self.grads], linear_groups(out, 64));
                    seg.push(d.named(name("fc_backward_bias")));
                    if i > 0 {
                        let mut g =
                            GemmParams::fc_backward_input(batch, inp, out, n.w_off, prev_relu).with_operands(bwd);
                        let mut a = dz;
                        if g.transposes_a() {
                            seg.push(self.transpose_a(dz, batch, out).named(name("transpose gradient")));
                            (g, a) = (g.a_transposed(), &self.a_t);
                        }
                        let u = uniform(gpu, "fc_backward_input", &g.params);
                        let at = [a, w_in, &self.unused, mask, &self.dz[i - 1]];
                        seg.push(g.dispatch(gpu, &u, at).named(name("fc_backward_input")));
                    }
                }
                Op::Conv2d(s) => {
                    let conv = &k.on_demand()?.conv;
                    let s = s.with_batch(batch);
                    let flags = if accumulate { ConvParams::ACCUMULATE } else { 0 };
                    let p = ConvParams::new(&s, flags, n.w_off, n.b_off);
                    let (u, g) = (uniform(gpu, "conv2d_backward", &p), p.groups());
                    let path = self.im2col_at(i, batch);
                    let (cols, rows) = (self.cols[i].as_ref(), &self.conv_rows);
                    if let (Some(path), Some(cols)) = (path, cols) {
                        let h = self.half_operands(half, i);
                        let grads = &self.grads;
                        for d in
                            path.backward_weights(gpu, dz, cols, rows, grads, accumulate, &self.unused, h.as_ref())?
                        {
                            let what = name(&d.name);
                            seg.push(d.named(what));
                        }
                    } else {
                        let at = [&u, dz, input, &self.unused, &self.grads];
                        seg.push(
                            conv.conv2d_backward_weights
                                .dispatch(dev, &at, g.backward_weights)
                                .named(name("conv2d_backward_weights")),
                        );
                    }
                    let at = [&u, dz, &self.unused, &self.unused, &self.grads];
                    seg.push(
                        conv.conv2d_backward_bias
                            .dispatch(dev, &at, g.backward_bias)
                            .named(name("conv2d_backward_bias")),
                    );
                    if let (true, Some(path), Some(cols)) = (i > 0, path, cols) {
                        // The weight gradient has read the patches: their gradient takes their place.
                        let a_prev = prev_relu.then_some(input);
                        let at = &self.dz[i - 1];
                        let h = self.half_operands(half, i);
                        for d in
                            path.backward_input(gpu, rows, &self.params, cols, a_prev, at, &self.unused, h.as_ref())?
                        {
                            let what = name(&d.name);
                            seg.push(d.named(what));
                        }
                    } else if i > 0 {
                        let p = ConvParams::new(&s, if prev_relu { ConvParams::MASK } else { 0 }, n.w_off, n.b_off);
                        let u = uniform(gpu, "conv2d_backward_input", &p);
                        let at = [&u, dz, &self.params, mask, &self.dz[i - 1]];
                        let d = conv.conv2d_backward_input.dispatch(dev, &at, p.groups().backward_input);
                        seg.push(d.named(name("conv2d_backward_input")));
                    }
                }
                _ if i == 0 => {}
                Op::ReLU => {
                    let len = batch * n.in_len;
                    let u = uniform(gpu, "relu_backward", &LenParams { len: len as u32, _pad: [0; 3] });
                    let kernel = &k.on_demand()?.relu_backward;
                    let d =
                        kernel.dispatch(dev, &[&u, input, dz, &self.dz[i - 1]], linear_groups(len, LINEAR_WG as usize));
                    seg.push(d.named(name("relu_backward")));
                }
                Op::MaxPool2d(_) | Op::Dropout { .. } => {
                    let len = batch * n.in_len;
                    let routed = if prev_relu { &self.scratch } else { &self.dz[i - 1] };
                    let d = if let Op::MaxPool2d(s) = n.op {
                        let u = uniform(gpu, "maxpool2d_backward", &PoolParams::new(&s.with_batch(batch)));
                        let argmax = self.argmax[i].as_ref().expect("a MaxPool2d node's argmax");
                        let kernel = &k.on_demand()?.conv.maxpool2d_backward;
                        kernel.dispatch(dev, &[&u, dz, argmax, routed], linear_groups(len, 64))
                    } else {
                        let u = drop_u[i].as_ref().expect("the dropout node's forward parameters");
                        let bindings = [whole(u), whole(dz), keys.clone(), whole(routed)];
                        let kernel = &k.on_demand()?.conv.dropout_backward;
                        kernel.dispatch_ranges(dev, &bindings, linear_groups(len, 256))
                    };
                    seg.push(d.named(name(&op_name(&n.op, "backward"))));
                    if prev_relu {
                        let u = uniform(gpu, "relu_backward", &LenParams { len: len as u32, _pad: [0; 3] });
                        let kernel = &k.on_demand()?.relu_backward;
                        let at = [&u, input, &self.scratch, &self.dz[i - 1]];
                        let d = kernel.dispatch(dev, &at, linear_groups(len, LINEAR_WG as usize));
                        seg.push(d.named(name("relu_backward (fused ReLU mask)")));
                    }
                }
            }
        }
        Ok(seg)
    }

    /// Runs one training step with every dispatch in its own timed pass and returns each
    /// dispatch's name and GPU time in milliseconds (needs `TIMESTAMP_QUERY`; `None`
    /// without it). Slower than [`Self::train_step`] (a pass per dispatch): for profiles only.
    pub fn profile_step(&mut self, table: TableId, idx: &[u32], opt: &OptimStep) -> Result<Option<Vec<(String, f64)>>> {
        if !self.gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return Ok(None);
        }
        let mode = self.step_mode(idx.len());
        // Record (and cache) the segment through an ordinary step first.
        self.submit(table, idx, mode, Some(opt))?;
        self.write_optim(opt)?;
        self.gpu.queue.write_buffer(&self.idx, 0, bytemuck::cast_slice(idx));
        let mut all = self.segments[&(table, idx.len(), mode)].clone();
        if !matches!(mode, Mode::SgdStep { .. }) {
            all.push(self.optimizer.clone());
        }
        let count = 2 * all.len() as u32;
        let qs = self.gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("profile resolve"),
            size: u64::from(count) * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut enc = self.encoder();
        for (i, d) in all.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.name),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &qs,
                    beginning_of_pass_write_index: Some(2 * i as u32),
                    end_of_pass_write_index: Some(2 * i as u32 + 1),
                }),
            });
            record(&mut pass, std::slice::from_ref(d));
        }
        enc.resolve_query_set(&qs, 0..count, &resolve, 0);
        self.gpu.queue.submit([enc.finish()]);
        let ticks: Vec<u64> = read(self.gpu, &resolve, count as usize)?;
        let period = f64::from(self.gpu.queue.get_timestamp_period());
        Ok(Some(
            all.iter()
                .enumerate()
                .map(|(i, d)| (d.name.clone(), ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6))
                .collect(),
        ))
    }

    /// Reads the metrics summed since the last call and clears them (waits for the device).
    pub fn take_stats(&mut self) -> Result<Stats> {
        let size = std::mem::size_of::<Stats>() as u64;
        let mut enc = self.encoder();
        enc.copy_buffer_to_buffer(&self.stats, 0, &self.stats_staging, 0, size);
        enc.clear_buffer(&self.stats, 0, None);
        self.gpu.queue.submit([enc.finish()]);
        self.in_flight.clear();
        Ok(map_read::<Stats>(self.gpu, &self.stats_staging, 1)?[0])
    }

    /// The flat parameter vector (waits for the device).
    pub fn read_params(&self) -> Result<Vec<f32>> {
        read(self.gpu, &self.params, self.model.param_count())
    }

    /// The gradient buffer as last computed (waits for the device); a fused SGD step
    /// ([`Self::fused_sgd`]) leaves it as it was.
    pub fn read_grads(&self) -> Result<Vec<f32>> {
        read(self.gpu, &self.grads, self.model.param_count())
    }

    /// [`Self::read_grads`] into `out` (one value per parameter), through a read-back
    /// buffer kept from call to call.
    pub fn read_grads_into(&self, out: &mut [f32]) -> Result<()> {
        let m = self.model.param_count();
        if out.len() != m {
            return Err(Error::shape("GpuNet::read_grads_into", format!("{m} values"), out.len()));
        }
        let bytes = (m * 4) as u64;
        let staging = self.grads_staging.get_or_init(|| {
            self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("gradient read-back"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut enc = self.encoder();
        enc.copy_buffer_to_buffer(&self.grads, 0, staging, 0, bytes);
        self.gpu.queue.submit([enc.finish()]);
        map_read_into(self.gpu, staging, out)
    }

    /// Overwrites the gradient buffer with `g` and clears the metrics' non-finite flag, so
    /// the next [`apply_update`](Self::apply_update) applies `g` (a data-parallel step's
    /// reduced gradient).
    pub fn write_grads(&self, g: &[f32]) -> Result<()> {
        let m = self.model.param_count();
        if g.len() != m {
            return Err(Error::shape("GpuNet::write_grads", format!("{m} values"), g.len()));
        }
        self.gpu.queue.write_buffer(&self.grads, 0, bytemuck::cast_slice(g));
        let flag = std::mem::offset_of!(Stats, step_bad) as u64;
        self.gpu.queue.write_buffer(&self.stats, flag, bytemuck::bytes_of(&0u32));
        Ok(())
    }

    /// The optimizer's state vectors (as many as the rule keeps).
    pub fn read_state(&self) -> Result<Vec<Vec<f32>>> {
        let m = self.model.param_count();
        [&self.s1, &self.s2].iter().take(self.kind.state_vectors()).map(|b| read(self.gpu, b, m)).collect()
    }

    /// Overwrites parameters and optimizer state (for resuming).
    pub fn write_state(&self, params: &[f32], state: &[Vec<f32>]) -> Result<()> {
        let m = self.model.param_count();
        if params.len() != m || state.len() != self.kind.state_vectors() || state.iter().any(|s| s.len() != m) {
            let expected = format!("{m} parameters and {} state vectors of {m}", self.kind.state_vectors());
            let got = format!(
                "{} parameters and state vectors of {:?}",
                params.len(),
                state.iter().map(Vec::len).collect::<Vec<_>>()
            );
            return Err(Error::shape("GpuNet::write_state", expected, got));
        }
        self.gpu.queue.write_buffer(&self.params, 0, bytemuck::cast_slice(params));
        for (b, s) in [&self.s1, &self.s2].iter().zip(state) {
            self.gpu.queue.write_buffer(b, 0, bytemuck::cast_slice(s));
        }
        Ok(())
    }

    /// Bytes of device memory this network holds: parameters, gradients, optimizer state,
    /// activations, im2col patches, metrics and data tables (uniforms and staging not
    /// counted).
    pub fn memory_bytes(&self) -> u64 {
        let fixed = [
            &self.params,
            &self.wt,
            &self.grads,
            &self.s1,
            &self.s2,
            &self.x,
            &self.y,
            &self.idx,
            &self.scratch,
            &self.a_t,
            &self.conv_rows,
        ];
        let per_layer =
            self.acts.iter().chain(&self.dz).chain(self.argmax.iter().flatten()).chain(self.cols.iter().flatten());
        let tables = self.tables.iter().flat_map(|t| [Some(&t.src), Some(&t.labels), t.keys.as_ref()]).flatten();
        let rest = [&self.loss, &self.correct, &self.stats];
        let half = self.half.iter().flat_map(|h| [&h.params, &h.wt].into_iter().chain(h.inputs.iter().flatten()));
        fixed.into_iter().chain(per_layer).chain(tables).chain(rest).chain(half).map(wgpu::Buffer::size).sum()
    }
}

impl GpuNet<'_> {
    /// `transpose` of `a: [rows, cols]` into `a_t: [cols, rows]`, the `A` a product reads
    /// where [`Gemm::transposes_a`].
    fn transpose_a(&self, a: &wgpu::Buffer, rows: usize, cols: usize) -> Dispatch {
        let t = TransposeParams { rows: rows as u32, cols: cols as u32, src_off: 0, dst_off: 0 };
        t.dispatch(self.gpu, None, a, &self.a_t)
    }

    /// Mixed precision's f16 buffers for node `i`'s im2col path (`None` in f32).
    fn half_operands<'a>(&'a self, half: Option<(&'a HalfCopies, &'a Half)>, i: usize) -> Option<HalfOperands<'a>> {
        half.map(|(h, kernels)| HalfOperands { kernels, params: &h.params, wt: &h.wt, cols: h.input(i) })
    }

    /// Node `i`'s im2col path for a step of `batch` rows, if it takes one: a convolution
    /// whose patches for `batch` rows fit its buffer ([`im2col_batch`]).
    fn im2col_at(&self, i: usize, batch: usize) -> Option<Im2col> {
        let n = &self.model.nodes()[i];
        im2col_path(n, batch, self.wt_offsets[i]).filter(|_| batch <= self.im2col_rows[i])
    }
}

/// A recorded parameter block holding the draws' seed and epoch (a dropout node's, with
/// its index in the model, or the augmentation's).
enum Keyed {
    Dropout(wgpu::Buffer, DropoutParams, usize),
    Augment(wgpu::Buffer, AugmentParams),
}

impl Keyed {
    /// Writes the run's `seed` (a dropout node's own, [`Model::dropout_seed`]) and `epoch`
    /// into the block.
    fn rekey(&mut self, gpu: &Gpu, model: &Model, seed: u64, epoch: u32) {
        let split = |seed: u64| (seed as u32, (seed >> 32) as u32);
        match self {
            Keyed::Dropout(u, p, i) => {
                ((p.seed_lo, p.seed_hi), p.epoch) = (split(model.dropout_seed(*i, seed)), epoch);
                gpu.queue.write_buffer(u, 0, bytemuck::bytes_of(p));
            }
            Keyed::Augment(u, p) => {
                ((p.seed_lo, p.seed_hi), p.epoch) = (split(seed), epoch);
                gpu.queue.write_buffer(u, 0, bytemuck::bytes_of(p));
            }
        }
    }
}

/// Whether node `i`'s input gradient is routed (MaxPool2d, Dropout) and then masked by
/// the fused ReLU of node `i − 1`, which needs the scratch buffer.
fn masked_after_routing(nodes: &[Node], i: usize) -> bool {
    i > 0 && nodes[i - 1].relu && matches!(nodes[i].op, Op::MaxPool2d(_) | Op::Dropout { .. })
}

/// Node `n`'s im2col path for batches of `batch` with `Wᵀ` at `wt_off`, if it is a
/// convolution with a `Wᵀ` (one that takes im2col for some batch, [`im2col_batch`]).
fn im2col_path(n: &Node, batch: usize, wt_off: Option<usize>) -> Option<Im2col> {
    match (n.op, wt_off) {
        (Op::Conv2d(s), Some(wt_off)) => {
            Some(Im2col { s: s.with_batch(batch), w_off: n.w_off, b_off: n.b_off, wt_off })
        }
        _ => None,
    }
}

/// The op name of a node's `pass` ("forward" or "backward") kernel, for profiles.
fn op_name(op: &Op, pass: &str) -> String {
    let op = match op {
        Op::Linear { .. } => "fc",
        Op::Conv2d(_) => "conv2d",
        Op::MaxPool2d(_) => "maxpool2d",
        Op::ReLU => "relu",
        Op::Dropout { .. } => "dropout",
    };
    format!("{op}_{pass}")
}

/// The largest input or output width of `model`'s Linear nodes (0 without any).
fn linear_widest_of(model: &Model) -> usize {
    model
        .nodes()
        .iter()
        .filter_map(|n| if let Op::Linear { inp, out } = n.op { Some(inp.max(out)) } else { None })
        .max()
        .unwrap_or(0)
}

/// A binding of the whole of `buffer`.
fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    wgpu::BufferBinding { buffer, offset: 0, size: None }
}

/// The parameter block of a gather of `batch` rows of width `width`.
fn uniform_gather(gpu: &Gpu, batch: usize, width: usize) -> wgpu::Buffer {
    uniform(gpu, "gather", &GatherParams { batch: batch as u32, width: width as u32, _pad: [0; 2] })
}
