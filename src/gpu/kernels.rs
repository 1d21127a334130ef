//! Every WGSL kernel compiled once, with its explicit bind-group layout, and the
//! uniform parameter block each one reads. The math of each kernel is in the header of
//! its file in `shaders/`.
//!
//! One name per op: its CPU twin (`cpu::ops`, and `cpu::fast` for the GEMM-crate
//! path), its one-shot GPU runner (`gpu::ops`) and its `verify` case all carry the op's
//! name, and its parity test (`tests/parity.rs`) is `<op>_matches_cpu`. The WGSL entry
//! points carry it too, except the matrix products, which are named by their shape and
//! shared by the three products of the fully connected layer:
//!
//! | WGSL entry (`shaders/`)                    | op: CPU twin, runner, verify  | parity test                       |
//! |--------------------------------------------|-------------------------------|-----------------------------------|
//! | `gemm_nn` (vec4) or `gemm`; `gemm_tn` from `Xᵀ`‖ | `fc_forward`†            | `fc_forward_matches_cpu`          |
//! | `gemm_nt_row` (`gemm.wgsl`), B ≤ 4         | `fc_forward`†                 | `fc_forward_matches_cpu`, `small_batches_match_cpu` |
//! | `gemm_tn` (vec4) or `gemm`                 | `fc_backward_weights`†        | `fc_backward_weights_matches_cpu` |
//! | `gemm_tn_row` (`gemm_tn_row.wgsl`), B ≤ 4  | `fc_backward_weights`†        | `fc_backward_weights_matches_cpu`, `small_batches_match_cpu` |
//! | `gemm_tiled` (`gemm_tiled.wgsl`)           | the three products above      | `every_gemm_variant_gives_the_generic_bits` |
//! | `gemm_subgroup` (`gemm_subgroup.wgsl`)     | the three products above      | `every_gemm_variant_gives_the_generic_bits` |
//! | `gemm_tn_u64` (`gemm_u64.wgsl`)♦           | the three products above (`Aᵀ·B`) | `every_gemm_variant_gives_the_generic_bits`, `products_from_the_transposed_input_give_the_same_bits` |
//! | `gemm_nn` (vec4) or `gemm`; `gemm_tn` from `dZᵀ`‖ | `fc_backward_input`†   | `fc_backward_input_matches_cpu`   |
//! | `transpose` (`transpose.wgsl`)             | `transpose`                   | `transpose_matches_cpu`           |
//! | `transpose_u64` (`transpose_u64.wgsl`)♦    | `transpose`                   | `transpose_matches_cpu`           |
//! | `cast_f16` (`cast_f16.wgsl`)¶              | `cast_f16`                    | `cast_f16_matches_cpu`            |
//! | `transpose` (f16 destination)¶             | `transpose_f16`               | `transpose_f16_matches_cpu`       |
//! | `fc_backward_bias` (`bias_grad.wgsl`)      | `fc_backward_bias`†           | `fc_backward_bias_matches_cpu`    |
//! | `gemm_tn_row_sgd` (`gemm_tn_row.wgsl`)     | `fc_sgd_step`                 | `fc_sgd_step_matches_cpu`         |
//! | `relu_forward` (`relu.wgsl`)‡              | `relu_forward`                | `relu_forward_matches_cpu`        |
//! | `relu_backward` (`relu.wgsl`)‡             | `relu_backward`               | `relu_backward_matches_cpu`       |
//! | `softmax` (`softmax.wgsl`)*                | `softmax`                     | `softmax_matches_cpu`             |
//! | `softmax_xent` (`softmax.wgsl`)            | `softmax_xent`                | `softmax_xent_matches_cpu`        |
//! | `accumulate_stats` (`stats.wgsl`)          | `accumulate_stats`            | `accumulate_stats_matches_cpu`    |
//! | `optimizer_update_sgd` (`optim.wgsl`)      | `optimizer_update` (SGD)      | `optimizer_update_matches_cpu`    |
//! | `optimizer_update_momentum` (`optim.wgsl`) | `optimizer_update` (momentum) | `optimizer_update_matches_cpu`    |
//! | `optimizer_update_adam` (`optim.wgsl`)     | `optimizer_update` (Adam)     | `optimizer_update_matches_cpu`    |
//! | `gather_u8` (`gather.wgsl`), D ≡ 0 mod 4   | `gather_u8`                   | `gather_u8_matches_cpu`           |
//! | `gather_u8_unaligned` (`gather.wgsl`)      | `gather_u8`                   | `gather_u8_matches_cpu`           |
//! | `gather_f32` (`gather.wgsl`)               | `gather_f32`                  | `gather_f32_matches_cpu`          |
//! | `conv_im2col` (`conv_im2col.wgsl`)§        | `conv_im2col`                 | `im2col_kernels_match_cpu_bit_for_bit` |
//! | `conv_col2im` (`conv_im2col.wgsl`)§        | `conv_col2im`                 | `im2col_kernels_match_cpu_bit_for_bit` |
//! | `conv_rows_to_nchw` (`conv_im2col.wgsl`)§  | `conv_rows_to_nchw`           | `im2col_kernels_match_cpu_bit_for_bit` |
//! | `conv_nchw_to_rows` (`conv_im2col.wgsl`)§  | `conv_nchw_to_rows`           | `im2col_kernels_match_cpu_bit_for_bit` |
//!
//! ¶ Mixed precision's (`--precision mixed`, [`Half`], compiled on first use where the
//! device has `SHADER_F16`): `cast_f16` makes the f16 copies of the parameters, of each
//! Linear node's input and of each im2col convolution's patches, `transpose` built with an f16 destination writes `Wᵀ` in f16,
//! and every kernel of [`Gemm::variants`] but `gemm_tn_row` and `gemm_tn_u64` is built again for f16
//! operands ([`Operands`]): on f16 values each gives the f32 kernel's bits on the values
//! widened (`every_f16_gemm_variant_gives_the_f32_bits_of_its_rounded_operands`), and a
//! mixed step's gradient is the composition of the casts and the f32 products
//! (`tests/mixed.rs`).
//!
//! § The im2col path of a convolution (`gpu::conv_im2col`), compiled on demand with the
//! convolution kernels: these four around the three GEMMs above (`fc_forward`,
//! `fc_backward_weights`, `fc_backward_input` over `B·H_out·W_out` rows of patches), run
//! whole by the runner `conv2d_im2col` and its verify case of that name; parity tests in
//! `tests/conv_im2col.rs` (the whole path: `im2col_path_matches_the_convolution`).
//!
//! ♦ Built where the device has `SHADER_INT64` (llvmpipe has it): they read and write f32
//! data through `vec4<u64>` words, 8 values per access, because llvmpipe pays every
//! storage access per lane and per component whatever the component's width.
//! `gemm_tn_u64` is `gemm_tn` for products whose extents, offsets and strides are
//! multiples of 8 ([`Gemm::loads_u64`]), and the fixed rule takes it there; `transpose_u64`
//! copies whole 8×8 blocks ([`TransposeParams::words_u64`]). Both give the bits of the
//! kernels they stand for.
//!
//! "(vec4)": the entry in `gemm_vec4.wgsl`, run when the product is [`Gemm::aligned`];
//! otherwise the generic `gemm` (`gemm.wgsl`). `gemm_tiled` computes any of the three
//! through workgroup memory (hardware GPUs' kind of kernel), and `gemm_subgroup` (built
//! where the adapter has subgroups) shares `A` through the subgroup, both with the generic
//! kernel's bits like every variant of [`Gemm::variants`]. For fewer than [`VEC4_ROWS`] rows (a
//! batch of 1 to 7) `gemm_nn_row` of the same file replaces `gemm_nn`, bit for bit. `fc_forward` runs `transpose` first and
//! its product reads `Wᵀ`, except for batches of at most [`SMALL_BATCH`](super::gemm::SMALL_BATCH) rows: there
//! `gemm_nt_row` reads `W` itself and no step records a `transpose`; and the weight
//! gradient of such a batch, where [`Gemm::tn_row`], runs `gemm_tn_row`, which stores
//! vec4s. Both give the bits of the kernels they replace (`gemm_nt_row_and_gemm_tn_row_match_the_kernels_they_replace_bit_for_bit`
//! in `tests/parity.rs`). ‖ Where a forward or input-gradient product
//! [`Gemm::transposes_a`] (f32, more than 4 rows, whole vec4s), a training step first
//! transposes its `A` (the node's input, or its output's gradient) with `transpose` and
//! runs the product as `gemm_tn` from `Aᵀ` ([`Gemm::a_transposed`]; `transpose_u64` and
//! `gemm_tn_u64` where everything is a multiple of 8): the same sums in the same order, so the bits of
//! the one-shot runners, which take `gemm_nn`
//! (`gpu_gradient_is_the_composition_of_the_one_shot_ops` in `tests/training.rs`).
//! `fc_sgd_step` is a pure-SGD step's update fused into the
//! backward pass of such a batch (`GpuNet`'s fused SGD steps): `gemm_tn_row_sgd` computes
//! a layer's weight and bias gradients and applies `optimizer_update` (SGD) to them in
//! place, the bits of the separate kernels
//! (`fc_sgd_step_matches_the_separate_kernels_bit_for_bit`). The GPU runners of `fc_forward` and `fc_backward_input` fuse
//! the ReLU and the mask as the training step does. † The op has a second CPU twin of
//! the same name in `cpu::fast` (the CPU trainer's path). `gather_u8_unaligned` runs for
//! widths D not a multiple of 4. The entry marked * is recorded by no training step
//! (training fuses softmax into `softmax_xent`); the entries marked ‡ are recorded only
//! for models with a stand-alone ReLU or a fused ReLU's mask after max-pooling or
//! dropout (training fuses ReLU into the products otherwise). Those, and the
//! convolution, max-pooling, dropout and augmentation kernels (`conv_kernels`, whose
//! table is their parity tests in `tests/conv_parity.rs`, and `augment_matches_cpu` in
//! `tests/augment.rs`), are compiled on first use
//! ([`Kernels::on_demand`]): an MLP never builds them.

use super::buffers::uniform;
use super::conv_kernels::ConvKernels;
use super::gemm::{
    Gemm, Layout, Operands, GEMM_TILE, GEMM_TILED, GEMM_WG, NT_WG, ROW_WG, SG_WG, TN_ROW_SEG, TN_ROW_WG, VEC4_ROWS,
};
use super::pipeline::*;
use super::Gpu;
use crate::error::{Error, Result};
use crate::optim::OptimKind;
use bytemuck::{Pod, Zeroable};
use std::sync::OnceLock;

/// `transpose.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TransposeParams {
    pub rows: u32,
    pub cols: u32,
    pub src_off: u32,
    pub dst_off: u32,
}

impl TransposeParams {
    /// Columns each invocation of `transpose` copies (`COLS` in `transpose.wgsl`).
    pub const COLS: u32 = 16;

    /// Whether `transpose_u64` can run it: rows, columns and both offsets multiples of 8.
    pub fn words_u64(&self) -> bool {
        [self.rows, self.cols, self.src_off, self.dst_off].iter().all(|x| x % 8 == 0)
    }

    /// The kernel that runs this transpose, and its grid: mixed precision's f16 one where
    /// `half` is given; else `transpose_u64` (an 8×8 block per invocation) where the
    /// device has it and [`Self::words_u64`]; else `transpose` (one row and
    /// [`Self::COLS`] columns per invocation). All copy the same bits.
    pub fn kernel<'k>(&self, k: &'k Kernels, half: Option<&'k Half>) -> (&'k Kernel, [u32; 3]) {
        let scalar = [self.rows.div_ceil(64).max(1), self.cols.div_ceil(Self::COLS).max(1), 1];
        match (half, &k.transpose_u64) {
            (Some(h), _) => (&h.transpose_f16, scalar),
            (None, Some(t)) if self.words_u64() => {
                (t, [self.cols.div_ceil(64).max(1), self.rows.div_ceil(64).max(1), 1])
            }
            (None, _) => (&k.transpose, scalar),
        }
    }

    /// The dispatch of this transpose of `src` into `dst` on [`Self::kernel`]'s choice.
    pub fn dispatch(&self, gpu: &Gpu, half: Option<&Half>, src: &wgpu::Buffer, dst: &wgpu::Buffer) -> Dispatch {
        let u = uniform(gpu, "transpose", self);
        let (kernel, groups) = self.kernel(&gpu.kernels, half);
        kernel.dispatch(&gpu.device, &[&u, src, dst], groups)
    }
}

/// `bias_grad.wgsl`'s parameters (entry `fc_backward_bias`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct BiasGradParams {
    pub batch: u32,
    pub out: u32,
    pub db_off: u32,
    pub accumulate: u32,
}

/// Parameters of the element-wise kernels (`relu.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct LenParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

/// `softmax.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SoftmaxParams {
    pub batch: u32,
    pub classes: u32,
    pub scale: f32,
    pub _pad: u32,
}

/// `stats.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct StatsParams {
    pub batch: u32,
    pub first_chunk: u32,
    pub _pad: [u32; 2],
}

/// The device-side metrics block of `stats.wgsl` (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct Stats {
    pub loss_sum: f32,
    pub correct: u32,
    pub samples: u32,
    pub bad_steps: u32,
    pub step_bad: u32,
    pub _pad: [u32; 3],
}

/// `OptimParams` of `optim_common.wgsl` (the optimizer kernels and the fused SGD steps),
/// written once per step.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct OptimParams {
    /// Parameters / 4, rounded up: the kernel updates a vec4 per invocation.
    pub vec4s: u32,
    pub nesterov: u32,
    pub decoupled: u32,
    pub _pad: u32,
    pub lr: f32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step_size: f32,
    pub sqrt_bc2: f32,
}

impl OptimParams {
    /// The block for one update of `len` parameters; `step_size = α/(1−β₁ᵗ)` and
    /// `√(1−β₂ᵗ)` are rounded to f32 exactly as `cpu::ops::optimizer_update` does.
    pub fn new(len: usize, st: &crate::optim::OptimStep) -> Self {
        OptimParams {
            vec4s: len.div_ceil(4) as u32,
            nesterov: u32::from(st.kind == OptimKind::Momentum { nesterov: true }),
            decoupled: u32::from(st.kind == OptimKind::Adam { decoupled: true }),
            _pad: 0,
            lr: st.lr,
            momentum: st.momentum,
            beta1: st.beta1,
            beta2: st.beta2,
            eps: st.eps,
            weight_decay: st.weight_decay,
            step_size: st.lr / st.bias_correction1(),
            sqrt_bc2: st.bias_correction2().sqrt(),
        }
    }
}

/// `gather.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GatherParams {
    pub batch: u32,
    pub width: u32,
    pub _pad: [u32; 2],
}

impl GatherParams {
    /// The gather for byte (`bytes`) or f32 sources of this width — four bytes per
    /// invocation when rows are whole words — and its grid.
    pub fn kernel<'k>(&self, k: &'k Kernels, bytes: bool) -> (&'k Kernel, [u32; 3]) {
        match (bytes, self.width.is_multiple_of(4)) {
            (true, true) => (&k.gather_u8, [self.width.div_ceil(256), self.batch, 1]),
            (true, false) => (&k.gather_u8_unaligned, [self.width.div_ceil(64), self.batch, 1]),
            (false, _) => (&k.gather_f32, [self.width.div_ceil(64), self.batch, 1]),
        }
    }
}

/// The kernels every training step records, compiled once per device; the others on
/// first use ([`Self::on_demand`], and mixed precision's [`Self::half`]).
pub struct Kernels {
    /// The matrix products on f32 operands.
    pub gemms: GemmKernels,
    pub gemm_tn_row: Kernel,
    pub gemm_tn_row_sgd: Kernel,
    pub transpose: Kernel,
    /// `transpose_u64` (`transpose_u64.wgsl`), where the device has `SHADER_INT64`.
    pub transpose_u64: Option<Kernel>,
    pub fc_backward_bias: Kernel,
    pub softmax_xent: Kernel,
    pub accumulate_stats: Kernel,
    pub optimizer_update_sgd: Kernel,
    pub optimizer_update_momentum: Kernel,
    pub optimizer_update_adam: Kernel,
    pub gather_u8: Kernel,
    pub gather_u8_unaligned: Kernel,
    pub gather_f32: Kernel,
    device: wgpu::Device,
    on_demand: OnceLock<OnDemand>,
    half: OnceLock<Half>,
}

/// The kernels of [`Gemm::variants`] for one kind of [`Operands`]: the same sources built
/// with [`Operands::prelude`].
pub struct GemmKernels {
    /// `gemm` (`gemm.wgsl`): any strides and shapes.
    pub generic: Kernel,
    pub tiled: Kernel,
    /// `gemm_subgroup`, where the device has subgroups of at most 64 invocations.
    pub subgroup: Option<Kernel>,
    pub tn: Kernel,
    /// `gemm_tn_u64` (`gemm_u64.wgsl`): built for f32 operands where the device has
    /// `SHADER_INT64`.
    pub tn_u64: Option<Kernel>,
    pub nn: Kernel,
    pub nn_row: Kernel,
    pub nt_row: Kernel,
}

impl GemmKernels {
    fn new(device: &wgpu::Device, operands: Operands) -> Self {
        let pre = operands.prelude();
        let gemm =
            module(device, "gemm.wgsl", &[pre, GEMM_COMMON, GEMM_EPILOGUE, include_str!("../../shaders/gemm.wgsl")]);
        let tiled = module(
            device,
            "gemm_tiled.wgsl",
            &[pre, GEMM_COMMON, GEMM_EPILOGUE, include_str!("../../shaders/gemm_tiled.wgsl")],
        );
        let gemm4 = module(
            device,
            "gemm_vec4.wgsl",
            &[pre, GEMM_COMMON, GEMM_EPILOGUE, GEMM_BLOCK, include_str!("../../shaders/gemm_vec4.wgsl")],
        );
        let gemm_u64 = (operands == Operands::F32 && words_u64_run(device)).then(|| {
            module(
                device,
                "gemm_u64.wgsl",
                &[GEMM_COMMON, GEMM_EPILOGUE, GEMM_BLOCK, include_str!("../../shaders/gemm_u64.wgsl")],
            )
        });
        // gemm_subgroup uses gemm_vec4.wgsl's scalar_a, so it extends that file.
        let subgroup = subgroup_kernel_runs(device).then(|| {
            module(
                device,
                "gemm_subgroup.wgsl",
                &[
                    pre,
                    GEMM_COMMON,
                    GEMM_EPILOGUE,
                    GEMM_BLOCK,
                    include_str!("../../shaders/gemm_vec4.wgsl"),
                    include_str!("../../shaders/gemm_subgroup.wgsl"),
                ],
            )
        });
        let wg = [("WG", f64::from(GEMM_WG))];
        GemmKernels {
            generic: build(device, &gemm, "gemm", "urrrrw", &wg),
            tiled: build(device, &tiled, "gemm_tiled", "urrrrw", &[]),
            subgroup: subgroup.map(|m| build(device, &m, "gemm_subgroup", "urrrrw", &wg)),
            tn: build(device, &gemm4, "gemm_tn", "urrrrw", &wg),
            tn_u64: gemm_u64.map(|m| build(device, &m, "gemm_tn_u64", "urrrrw", &wg)),
            nn: build(device, &gemm4, "gemm_nn", "urrrrw", &wg),
            nn_row: build(device, &gemm4, "gemm_nn_row", "urrrrw", &wg),
            nt_row: build(device, &gemm, "gemm_nt_row", "urrrrw", &wg),
        }
    }
}

/// Mixed precision's kernels (`--precision mixed`), compiled on first use
/// ([`Kernels::half`]) where the device has `SHADER_F16`: the products on f16 operands,
/// `cast_f16` and the transpose that writes `Wᵀ` in f16.
pub struct Half {
    /// `A` and `B` f16 ([`Operands::F16`]).
    pub forward: GemmKernels,
    /// `A` f32, `B` f16 ([`Operands::F32F16`]).
    pub backward: GemmKernels,
    pub cast_f16: Kernel,
    pub transpose_f16: Kernel,
}

/// The kernels an MLP's training step does not record, compiled on first use: the
/// stand-alone ReLU (a `ReLU` node, or a fused ReLU's mask after max-pooling or dropout),
/// the row softmax (`wgtrain verify`, the parity tests), and the layer-sequence ops.
pub struct OnDemand {
    pub relu_forward: Kernel,
    pub relu_backward: Kernel,
    pub softmax: Kernel,
    /// Convolution, max-pooling and dropout (see [`super::conv_kernels::ConvKernels`]).
    pub conv: ConvKernels,
}

/// The storage buffers the widest kernel binds at once (gemm, softmax, optim, gather).
pub const STORAGE_BUFFERS_NEEDED: u32 = 5;

const GEMM_COMMON: &str = include_str!("../../shaders/gemm_common.wgsl");
const GEMM_EPILOGUE: &str = include_str!("../../shaders/gemm_epilogue.wgsl");
const GEMM_BLOCK: &str = include_str!("../../shaders/gemm_block.wgsl");
/// `enable f16;` and `to_f16`, mixed precision's conversion (cast_f16.wgsl, the f16 transpose).
const F16_COMMON: &str = include_str!("../../shaders/f16_common.wgsl");
const STATS_COMMON: &str = include_str!("../../shaders/stats_common.wgsl");
const OPTIM_COMMON: &str = include_str!("../../shaders/optim_common.wgsl");

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Result<Self> {
        let limits = device.limits();
        if limits.max_storage_buffers_per_shader_stage < STORAGE_BUFFERS_NEEDED {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffers_per_shader_stage",
                needed: u64::from(STORAGE_BUFFERS_NEEDED),
                allowed: u64::from(limits.max_storage_buffers_per_shader_stage),
                hint: "this adapter cannot run wgtrain's kernels; choose another with WGTRAIN_ADAPTER".into(),
            });
        }
        compiled(device, "the kernels", || {
            let grid = grid_prelude();
            let transpose = module(
                device,
                "transpose.wgsl",
                &[
                    "alias DT = f32;\nfn to_dt(x: f32) -> f32 {\n    return x;\n}\n",
                    include_str!("../../shaders/transpose.wgsl"),
                ],
            );
            let transpose_u64 = words_u64_run(device).then(|| {
                let m = module(device, "transpose_u64.wgsl", &[include_str!("../../shaders/transpose_u64.wgsl")]);
                build(device, &m, "transpose_u64", "urw", &[])
            });
            let tn_row = module(
                device,
                "gemm_tn_row.wgsl",
                &[GEMM_COMMON, STATS_COMMON, OPTIM_COMMON, include_str!("../../shaders/gemm_tn_row.wgsl")],
            );
            let bias = module(device, "bias_grad.wgsl", &[include_str!("../../shaders/bias_grad.wgsl")]);
            let softmax = module(device, "softmax.wgsl", &[include_str!("../../shaders/softmax.wgsl")]);
            let stats = module(device, "stats.wgsl", &[STATS_COMMON, include_str!("../../shaders/stats.wgsl")]);
            let optim = module(
                device,
                "optim.wgsl",
                &[&grid, STATS_COMMON, OPTIM_COMMON, include_str!("../../shaders/optim.wgsl")],
            );
            let gather = module(device, "gather.wgsl", &[include_str!("../../shaders/gather.wgsl")]);
            let k = |m: &wgpu::ShaderModule, entry: &'static str, sig: &str, constants: &[(&str, f64)]| {
                build(device, m, entry, sig, constants)
            };
            Kernels {
                gemms: GemmKernels::new(device, Operands::F32),
                gemm_tn_row: k(&tn_row, "gemm_tn_row", "urrrrw", &[]),
                gemm_tn_row_sgd: k(&tn_row, "gemm_tn_row_sgd", "urrurw", &[]),
                transpose: k(&transpose, "transpose", "urw", &[]),
                transpose_u64,
                fc_backward_bias: k(&bias, "fc_backward_bias", "urw", &[]),
                softmax_xent: k(&softmax, "softmax_xent", "urrwww", &[]),
                accumulate_stats: k(&stats, "accumulate_stats", "urrw", &[]),
                optimizer_update_sgd: k(&optim, "optimizer_update_sgd", "urrwww", &[]),
                optimizer_update_momentum: k(&optim, "optimizer_update_momentum", "urrwww", &[]),
                optimizer_update_adam: k(&optim, "optimizer_update_adam", "urrwww", &[]),
                gather_u8: k(&gather, "gather_u8", "urrrww", &[]),
                gather_u8_unaligned: k(&gather, "gather_u8_unaligned", "urrrww", &[]),
                gather_f32: k(&gather, "gather_f32", "urrrww", &[]),
                device: device.clone(),
                on_demand: OnceLock::new(),
                half: OnceLock::new(),
            }
        })
    }

    /// The `optimizer_update` entry for `kind`'s rule.
    pub fn optimizer_update(&self, kind: OptimKind) -> &Kernel {
        match kind {
            OptimKind::Sgd => &self.optimizer_update_sgd,
            OptimKind::Momentum { .. } => &self.optimizer_update_momentum,
            OptimKind::Adam { .. } => &self.optimizer_update_adam,
        }
    }

    /// The kernels of [`OnDemand`], compiled on the first call.
    pub fn on_demand(&self) -> Result<&OnDemand> {
        if let Some(s) = self.on_demand.get() {
            return Ok(s);
        }
        let device = &self.device;
        let made = compiled(device, "the on-demand kernels", || {
            let relu = module(device, "relu.wgsl", &[&grid_prelude(), include_str!("../../shaders/relu.wgsl")]);
            let softmax = module(device, "softmax.wgsl", &[include_str!("../../shaders/softmax.wgsl")]);
            OnDemand {
                relu_forward: build(device, &relu, "relu_forward", "urrw", &[]),
                relu_backward: build(device, &relu, "relu_backward", "urrw", &[]),
                softmax: build(device, &softmax, "softmax", "urrwww", &[]),
                conv: ConvKernels::new(device),
            }
        })?;
        Ok(self.on_demand.get_or_init(|| made))
    }
}

impl Half {
    /// The dispatch of `cast_f16`: the f16 copy of `src`'s first `len` values into `dst`.
    pub fn cast(&self, gpu: &Gpu, src: &wgpu::Buffer, dst: &wgpu::Buffer, len: usize) -> Dispatch {
        let u = uniform(gpu, "cast_f16", &LenParams { len: len as u32, _pad: [0; 3] });
        self.cast_f16.dispatch(&gpu.device, &[&u, src, dst], linear_groups(len.div_ceil(4), LINEAR_WG as usize))
    }
}

impl Kernels {
    /// The kernels of [`Half`], compiled on the first call; an error where the device has
    /// no `SHADER_F16`.
    pub fn half(&self) -> Result<&Half> {
        if let Some(h) = self.half.get() {
            return Ok(h);
        }
        if !self.device.features().contains(wgpu::Features::SHADER_F16) {
            return Err(Error::invalid(
                "--precision",
                "mixed",
                "an adapter with SHADER_F16 (f16 in shaders; `wgtrain devices` lists it): this one has none \
                 (a new run can take --precision f32)",
            ));
        }
        let device = &self.device;
        let made = compiled(device, "the mixed-precision kernels", || {
            let cast = module(
                device,
                "cast_f16.wgsl",
                &[F16_COMMON, &grid_prelude(), include_str!("../../shaders/cast_f16.wgsl")],
            );
            let to_dt = "alias DT = f16;\nfn to_dt(x: f32) -> f16 {\n    return to_f16(x);\n}\n";
            let transpose =
                module(device, "transpose.wgsl", &[F16_COMMON, to_dt, include_str!("../../shaders/transpose.wgsl")]);
            Half {
                forward: GemmKernels::new(device, Operands::F16),
                backward: GemmKernels::new(device, Operands::F32F16),
                cast_f16: build(device, &cast, "cast_f16", "urw", &[]),
                transpose_f16: build(device, &transpose, "transpose", "urw", &[]),
            }
        })?;
        Ok(self.half.get_or_init(|| made))
    }

    /// The product kernels for `operands`.
    ///
    /// # Panics
    /// For f16 operands, if [`Self::half`] has not compiled them (`GpuNet` and `bench`
    /// call it before recording any such product).
    pub fn gemms(&self, operands: Operands) -> &GemmKernels {
        if operands == Operands::F32 {
            return &self.gemms;
        }
        let half = self.half.get().expect("the mixed-precision kernels, compiled by Kernels::half");
        if operands == Operands::F16 {
            &half.forward
        } else {
            &half.backward
        }
    }
}

/// Whether the kernels that read and write f32 data as 64-bit words (`gemm_tn_u64`,
/// `transpose_u64`) can run on `device` (and so are built): `SHADER_INT64`.
pub fn words_u64_run(device: &wgpu::Device) -> bool {
    device.features().contains(wgpu::Features::SHADER_INT64)
}

/// Whether `gemm_subgroup` can run on `device` (and so is built): subgroups, of at most
/// [`SG_WG`] invocations (its workgroup must hold whole subgroups).
pub fn subgroup_kernel_runs(device: &wgpu::Device) -> bool {
    let info = device.adapter_info();
    device.features().contains(wgpu::Features::SUBGROUP)
        && (1..=SG_WG).contains(&info.subgroup_min_size)
        && info.subgroup_max_size <= SG_WG
}

/// The kernel family a matrix product runs on, chosen here where the kernels are.
impl Gemm {
    /// The fixed rule's kernel for this product (vec4 when aligned, `gemm_tn_u64` for an
    /// `Aᵀ·B` aligned to 8 where the device has it, one row per invocation for `A·B` of
    /// fewer than [`VEC4_ROWS`] rows, the row kernels of batches of at most
    /// [`SMALL_BATCH`](super::gemm::SMALL_BATCH) rows) and its workgroup grid.
    pub fn kernel<'k>(&self, k: &'k Kernels) -> (&'k Kernel, [u32; 3]) {
        let v = self.variants(k);
        let (_, kernel, groups) = *v.last().expect("the generic kernel");
        (kernel, groups)
    }

    /// Every kernel that can compute this product, with its grid: hardware GPUs' kinds
    /// first (the workgroup-tiled one, and the subgroup one where the device has it and
    /// `B`'s rows are vec4s), then the generic one, then `gemm_nt_row` for `A·Bᵀ`;
    /// otherwise the vec4 one when aligned, then `gemm_tn_u64` where [`Self::loads_u64`] and
    /// the device has it, then `gemm_nn_row` for an aligned `A·B` of fewer than
    /// [`VEC4_ROWS`] rows, or `gemm_tn_row` where [`Self::tn_row`] (for `bench --gemm`;
    /// [`Self::kernel`]'s fixed rule takes the last, so never a hardware kind). All give
    /// the same bits.
    pub fn variants<'k>(&self, k: &'k Kernels) -> Vec<(&'static str, &'k Kernel, [u32; 3])> {
        let p = &self.params;
        let g = k.gemms(self.operands);
        let grid = |cols: u32, rows: u32| [p.n.div_ceil(cols).max(1), p.m.div_ceil(rows).max(1), 1];
        let mut v = vec![("tiled 64x64, workgroup memory", &g.tiled, grid(GEMM_TILED, GEMM_TILED))];
        if let Some(sg) = &g.subgroup {
            if self.layout != Layout::Nt && p.b_sn == 1 && [p.n, p.b_sk, p.b_off].iter().all(|x| x % 4 == 0) {
                v.push(("subgroup 8x8, A shuffled", sg, grid(8 * SG_WG, 8)));
            }
        }
        v.push(("generic 4x4", &g.generic, grid(GEMM_TILE, GEMM_TILE)));
        if self.layout == Layout::Nt {
            v.push(("1x2 rows of W", &g.nt_row, grid(2 * NT_WG, 1)));
            return v;
        }
        if self.aligned() {
            let kernel = match self.layout {
                Layout::Tn => &g.tn,
                Layout::Nn => &g.nn,
                Layout::Nt => unreachable!("A·Bᵀ returned above"),
            };
            v.push(("vec4 8x8", kernel, grid(8 * GEMM_WG, VEC4_ROWS * GEMM_WG)));
            if let (true, Some(tn_u64)) = (self.loads_u64(), &g.tn_u64) {
                v.push(("u64 loads 8x8", tn_u64, grid(8 * GEMM_WG, VEC4_ROWS * GEMM_WG)));
            }
            if self.layout == Layout::Nn && p.m < VEC4_ROWS {
                v.push(("vec4 1x8 rows", &g.nn_row, grid(8 * ROW_WG, 1)));
            }
        }
        if self.tn_row() {
            let segments = p.m as usize * (p.n / 4).div_ceil(TN_ROW_SEG) as usize;
            let groups = linear_groups(segments, TN_ROW_WG as usize);
            v.push(("vec4 row segments, vec4 stores", &k.gemm_tn_row, groups));
        }
        v
    }

    /// The dispatch of this product with `buffers` (a, b, bias, mask, c) bound after the
    /// uniform, on the kernel the device's choices give ([`crate::gpu::choice`]).
    pub fn dispatch(&self, gpu: &crate::gpu::Gpu, uniform: &wgpu::Buffer, buffers: [&wgpu::Buffer; 5]) -> Dispatch {
        let (kernel, groups) = gpu.gemm_kernel(self);
        let [a, b, bias, mask, c] = buffers;
        kernel.dispatch(&gpu.device, &[uniform, a, b, bias, mask, c], groups)
    }
}
