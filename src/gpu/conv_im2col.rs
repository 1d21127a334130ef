//! The im2col path of a convolution on the device: the patches of the batch as a matrix
//! (`conv_im2col.wgsl`, whose header states the math and the layouts) and the fully
//! connected layer's three GEMMs over it. The training step ([`super::net`]), the one-shot
//! runners ([`super::conv_ops`]) and `bench --conv` record the same dispatches from here.
//! Which convolutions take it is [`im2col_wins`].

use super::buffers::uniform;
use super::conv_kernels::ConvParams;
use super::gemm::{GemmParams, Operands};
use super::kernels::{Half, TransposeParams};
use super::pipeline::{linear_groups, Dispatch, LINEAR_WG};
use super::Gpu;
use crate::cpu::conv::Conv2dShape;
use crate::error::Result;

/// Patch columns `K = C_in·k·k` from which a convolution runs through im2col rather than
/// the implicit kernels of `conv2d.wgsl`. Measured on llvmpipe (`wgtrain bench --conv`,
/// the cnn preset's two shapes, batch 128; figures in `conv2d.wgsl`'s header): for
/// 32→64 on 14×14 (K = 288) every product is faster by im2col (forward 181 against
/// 330 ms, weight gradient 124 against 391 ms, input gradient 215 against 482 ms, on a
/// loaded machine); for 1→32 on 28×28 (K = 9) the GEMM is starved by its short sum and
/// the patches cost more than the implicit forward (84 against 28 ms) and weight gradient
/// (70 against 26 ms). The threshold sits between the two measured shapes (nothing
/// between them was measured); K decides because the GEMM's sum length is what feeds its
/// register block. A shape-only rule: the same choice, hence the same bits, every run.
pub const IM2COL_MIN_K: usize = 32;

/// Whether the convolution of shape `s` runs through im2col ([`IM2COL_MIN_K`]).
pub fn im2col_wins(s: &Conv2dShape) -> bool {
    s.c_in * s.k * s.k >= IM2COL_MIN_K
}

/// The largest batch, up to `max_batch`, for which the convolution of shape `s` runs
/// through im2col: 0 unless [`im2col_wins`], else as many samples as one binding of `gpu`
/// holds patches for. A recorded step of `batch` rows takes im2col iff `batch` is at most
/// this (steps are recorded once per batch size, so every step of one size takes the same
/// path and gives the same bits); larger batches — evaluation's chunks of 1,024 rows on
/// llvmpipe's 128 MiB bindings — take the implicit kernels, which need no patches.
pub fn im2col_batch(gpu: &Gpu, s: &Conv2dShape, max_batch: usize) -> usize {
    if !im2col_wins(s) {
        return 0;
    }
    let per_sample = (s.h_out * s.w_out * s.c_in * s.k * s.k) as u64 * 4;
    let allowed = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
    (allowed / per_sample).min(max_batch as u64) as usize
}

/// Whether a step of `batch` rows runs the convolution of shape `s` through im2col
/// ([`im2col_batch`]).
pub fn takes_im2col(gpu: &Gpu, s: &Conv2dShape, batch: usize) -> bool {
    batch >= 1 && im2col_batch(gpu, s, batch) == batch
}

/// Mixed precision's buffers for an im2col path (`--precision mixed`): its three GEMMs
/// read f16 copies — the patches (cast after `conv_im2col`), `Wᵀ` (the f16 transpose) and
/// `W` — as the fully connected layer's do; the patches' gradient, the rows and the output
/// stay f32.
pub struct HalfOperands<'a> {
    pub kernels: &'a Half,
    /// The parameter vector in f16 (`W` at `w_off`), cast at the start of the step.
    pub params: &'a wgpu::Buffer,
    /// `Wᵀ` in f16 at `wt_off`, written by this path's forward.
    pub wt: &'a wgpu::Buffer,
    /// The patches in f16, `B·P·K` values.
    pub cols: &'a wgpu::Buffer,
}

/// One convolution's im2col path: the batched shape and where its weights, bias and `Wᵀ`
/// live (elements of the parameter / gradient buffer and of the transposed-weights
/// buffer; `wt_off` a multiple of 8, as the vec4 GEMM (4) and the 64-bit-word one (8)
/// load it).
#[derive(Clone, Copy, Debug)]
pub struct Im2col {
    pub s: Conv2dShape,
    pub w_off: usize,
    pub b_off: usize,
    pub wt_off: usize,
}

impl Im2col {
    /// Patch rows, `B·H_out·W_out`.
    pub fn rows(&self) -> usize {
        self.s.batch * self.s.h_out * self.s.w_out
    }

    /// Patch columns, `K = C_in·k·k`.
    pub fn kdim(&self) -> usize {
        self.s.c_in * self.s.k * self.s.k
    }

    /// Values of the patches (and of their gradient), `B·P·K`.
    pub fn cols_len(&self) -> usize {
        self.rows() * self.kdim()
    }

    /// Values of the output (or its gradient) as the GEMMs' rows, `B·P·C_out`.
    pub fn out_rows_len(&self) -> usize {
        self.rows() * self.s.c_out
    }

    fn params(&self, flags: u32) -> ConvParams {
        ConvParams::new(&self.s, flags, self.w_off, self.b_off)
    }

    /// `z = conv(x, w) + b` (ReLU): `conv_im2col` x → `cols`; `transpose` W → `Wᵀ` in `wt`;
    /// `rows = cols·Wᵀ + b` (ReLU in the epilogue); `conv_rows_to_nchw` rows → `z`.
    /// `unused` is bound where a kernel reads nothing. With `half`, `cast_f16` of `cols`
    /// follows the patches, the transpose writes `half.wt` and the GEMM reads the f16 copies.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        gpu: &Gpu,
        x: &wgpu::Buffer,
        params: &wgpu::Buffer,
        wt: &wgpu::Buffer,
        cols: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        z: &wgpu::Buffer,
        relu: bool,
        unused: &wgpu::Buffer,
        half: Option<&HalfOperands>,
    ) -> Result<Vec<Dispatch>> {
        let (dev, conv) = (&gpu.device, &gpu.kernels.on_demand()?.conv);
        let s = &self.s;
        let u = uniform(gpu, "conv_im2col", &self.params(0));
        let im2col = conv.conv_im2col.dispatch(dev, &[&u, x, unused, cols], self.grid(self.rows() * s.c_in));
        let mut out = vec![im2col.named("conv_im2col".into())];
        let (cols_in, wt_in, operands) = match half {
            Some(h) => {
                out.push(h.kernels.cast(gpu, cols, h.cols, self.cols_len()).named("cast_f16 patches".into()));
                (h.cols, h.wt, Operands::F16)
            }
            None => (cols, wt, Operands::F32),
        };
        let t = TransposeParams {
            rows: s.c_out as u32,
            cols: self.kdim() as u32,
            src_off: self.w_off as u32,
            dst_off: self.wt_off as u32,
        };
        let transpose = t.dispatch(gpu, half.map(|h| h.kernels), params, wt_in);
        let g = GemmParams::fc_forward(self.rows(), self.kdim(), s.c_out, self.wt_off, self.b_off, relu)
            .with_operands(operands);
        let gu = uniform(gpu, "im2col forward GEMM", &g.params);
        let gemm = g.dispatch(gpu, &gu, [cols_in, wt_in, params, unused, rows]);
        let back = conv.conv_rows_to_nchw.dispatch(dev, &[&u, rows, unused, z], self.grid(self.out_rows_len()));
        out.extend([
            transpose.named("transpose".into()),
            gemm.named("im2col forward GEMM".into()),
            back.named("conv_rows_to_nchw".into()),
        ]);
        Ok(out)
    }

    /// `dW (+)= dZᵀ·cols` into the gradient buffer `grads` at `w_off`: `conv_nchw_to_rows`
    /// dz → `rows` (which [`Self::backward_input`] then reads), and the GEMM over the
    /// forward's `cols` (`half.cols` with `half`).
    #[allow(clippy::too_many_arguments)]
    pub fn backward_weights(
        &self,
        gpu: &Gpu,
        dz: &wgpu::Buffer,
        cols: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        grads: &wgpu::Buffer,
        accumulate: bool,
        unused: &wgpu::Buffer,
        half: Option<&HalfOperands>,
    ) -> Result<Vec<Dispatch>> {
        let (dev, conv) = (&gpu.device, &gpu.kernels.on_demand()?.conv);
        let u = uniform(gpu, "conv_nchw_to_rows", &self.params(0));
        let to_rows = conv.conv_nchw_to_rows.dispatch(dev, &[&u, dz, unused, rows], self.grid(self.out_rows_len()));
        let (cols_in, operands) = half.map_or((cols, Operands::F32), |h| (h.cols, Operands::F32F16));
        let g = GemmParams::fc_backward_weights(self.rows(), self.kdim(), self.s.c_out, self.w_off, accumulate)
            .with_operands(operands);
        let gu = uniform(gpu, "im2col backward_weights GEMM", &g.params);
        let gemm = g.dispatch(gpu, &gu, [rows, cols_in, unused, unused, grads]);
        Ok(vec![to_rows.named("conv_nchw_to_rows".into()), gemm.named("im2col backward_weights GEMM".into())])
    }

    /// `dx = convᵀ(dz, w)` (⊙ `[a_prev > 0]` when `a_prev` is given): `dcols = dZ·W` from
    /// the rows [`Self::backward_weights`] left in `rows`, then `conv_col2im` → `dx`.
    /// `dcols` may be the forward's `cols` once the weight gradient is recorded. With
    /// `half` the GEMM reads `W` from `half.params`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_input(
        &self,
        gpu: &Gpu,
        rows: &wgpu::Buffer,
        params: &wgpu::Buffer,
        dcols: &wgpu::Buffer,
        a_prev: Option<&wgpu::Buffer>,
        dx: &wgpu::Buffer,
        unused: &wgpu::Buffer,
        half: Option<&HalfOperands>,
    ) -> Result<Vec<Dispatch>> {
        let (dev, conv) = (&gpu.device, &gpu.kernels.on_demand()?.conv);
        let (w_in, operands) = half.map_or((params, Operands::F32), |h| (h.params, Operands::F32F16));
        let g = GemmParams::fc_backward_input(self.rows(), self.kdim(), self.s.c_out, self.w_off, false)
            .with_operands(operands);
        let gu = uniform(gpu, "im2col backward_input GEMM", &g.params);
        let gemm = g.dispatch(gpu, &gu, [rows, w_in, unused, unused, dcols]);
        let u = uniform(gpu, "conv_col2im", &self.params(if a_prev.is_some() { ConvParams::MASK } else { 0 }));
        let mask = a_prev.unwrap_or(unused);
        let col2im = conv.conv_col2im.dispatch(dev, &[&u, dcols, mask, dx], self.grid(self.s.batch * self.s.in_len()));
        Ok(vec![gemm.named("im2col backward_input GEMM".into()), col2im.named("conv_col2im".into())])
    }

    fn grid(&self, len: usize) -> [u32; 3] {
        linear_groups(len, LINEAR_WG as usize)
    }
}
