//! The matrix products of the fully connected layer: `gemm.wgsl`'s parameter block, the
//! three uses of it (forward, weight gradient, input gradient) and the choice between
//! the generic kernel, the `vec4` register-blocked ones (`gemm_vec4.wgsl`), the one
//! reading 64-bit words (`gemm_u64.wgsl`) and the row
//! kernels of batches of at most [`SMALL_BATCH`] rows (`gemm_nt_row` in `gemm.wgsl`,
//! `gemm_tn_row.wgsl`).

use bytemuck::{Pod, Zeroable};

/// `gemm.wgsl`'s parameters; see the constructors for the three uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub a_off: u32,
    pub a_sm: u32,
    pub a_sk: u32,
    pub bias_off: u32,
    pub b_off: u32,
    pub b_sk: u32,
    pub b_sn: u32,
    pub mask_off: u32,
    pub c_off: u32,
    pub c_sm: u32,
    pub _pad: [u32; 2],
}

/// Invocations per workgroup side in `gemm.wgsl`, and the C tile one group covers.
pub const GEMM_WG: u32 = 8;
pub const GEMM_TILE: u32 = 4 * GEMM_WG;
/// The C tile one workgroup of `gemm_tiled.wgsl` covers (`TILE`).
pub const GEMM_TILED: u32 = 64;
/// Rows of C each invocation of `gemm_vec4.wgsl` holds (8 columns each).
pub const VEC4_ROWS: u32 = 8;
/// Invocations per workgroup of `gemm_nn_row` (`ROW_WG` in `gemm_vec4.wgsl`).
pub const ROW_WG: u32 = 16;
/// Invocations per workgroup of `gemm_subgroup` (`SG_WG` in `gemm_subgroup.wgsl`), each
/// 8 columns of the group's 8 rows; the largest subgroup it can run on.
pub const SG_WG: u32 = 64;
/// Invocations per workgroup of `gemm_nt_row` (`NT_WG` in `gemm.wgsl`), each 2 columns.
pub const NT_WG: u32 = 32;
/// Invocations per workgroup of `gemm_tn_row` (`TN_ROW_WG` in `gemm_tn_row.wgsl`).
pub const TN_ROW_WG: u32 = 64;
/// The vec4s of a row of `C` each invocation of `gemm_tn_row` computes (`TN_ROW_SEG`).
pub const TN_ROW_SEG: u32 = 32;
/// Batches of at most this many rows take the row kernels that skip the transpose and
/// the scalar stores: the forward product reads `W` itself ([`GemmParams::fc_forward_w`],
/// `gemm_nt_row`), and the weight gradient stores vec4s (`gemm_tn_row`). Both read their
/// big operand once per row of the batch, so past 4 rows `transpose` with `gemm_nn_row`,
/// and `gemm_tn`, are as fast or faster (llvmpipe, 784×256: the forward 0.27 against
/// 0.74 ms at B = 1, 1.01 against 1.43 ms at B = 4, 2.1 against 1.7 ms at B = 7; the
/// weight gradient 0.26 against 0.44 ms at B = 1 since it runs 128 columns per invocation).
pub const SMALL_BATCH: usize = 4;
const _: () = assert!(SMALL_BATCH <= 4, "gemm_tn_row holds a row of A, one value per batch row, in a vec4");

impl GemmParams {
    pub const BIAS: u32 = 1;
    pub const RELU: u32 = 2;
    pub const ACCUMULATE: u32 = 4;
    pub const MASK: u32 = 8;

    /// `Z = X·Wᵀ + b` (ReLU): `a = X [B, IN]`, `b = Wᵀ [IN, OUT]` at `wt_off` (see
    /// `transpose.wgsl`), the bias at `bias_off` of the parameter buffer, `c = Z [B, OUT]`.
    pub fn fc_forward(batch: usize, inp: usize, out: usize, wt_off: usize, bias_off: usize, relu: bool) -> Gemm {
        Gemm::new(
            Layout::Nn,
            GemmParams {
                m: batch as u32,
                n: out as u32,
                k: inp as u32,
                flags: Self::BIAS | if relu { Self::RELU } else { 0 },
                a_sm: inp as u32,
                a_sk: 1,
                b_off: wt_off as u32,
                b_sk: out as u32,
                b_sn: 1,
                bias_off: bias_off as u32,
                c_sm: out as u32,
                ..Default::default()
            },
        )
    }

    /// `Z = X·Wᵀ + b` (ReLU) reading `W` itself: `a = X [B, IN]`, `b = W [OUT, IN]` at
    /// `w_off` of the parameter buffer (`B(k, o) = W[o, k]`), the bias at `bias_off`,
    /// `c = Z [B, OUT]`. For batches of at most [`SMALL_BATCH`] rows (`gemm_nt_row`); the
    /// same bits as [`Self::fc_forward`] on `Wᵀ`.
    pub fn fc_forward_w(batch: usize, inp: usize, out: usize, w_off: usize, bias_off: usize, relu: bool) -> Gemm {
        let mut g = Self::fc_forward(batch, inp, out, w_off, bias_off, relu);
        g.layout = Layout::Nt;
        (g.params.b_sk, g.params.b_sn) = (1, inp as u32);
        g
    }

    /// `dW = dZᵀ·X` (accumulated): `a = dZ [B, OUT]`, `b = X [B, IN]`, `c = dW [OUT, IN]` at
    /// `dw_off` of the gradient buffer.
    pub fn fc_backward_weights(batch: usize, inp: usize, out: usize, dw_off: usize, accumulate: bool) -> Gemm {
        Gemm::new(
            Layout::Tn,
            GemmParams {
                m: out as u32,
                n: inp as u32,
                k: batch as u32,
                flags: if accumulate { Self::ACCUMULATE } else { 0 },
                a_sm: 1,
                a_sk: out as u32,
                b_sk: inp as u32,
                b_sn: 1,
                c_off: dw_off as u32,
                c_sm: inp as u32,
                ..Default::default()
            },
        )
    }

    /// A pure-SGD step's fused update of a layer (`gemm_tn_row_sgd`): the sums of
    /// [`Self::fc_backward_weights`] (not accumulated) update `W` at `w_off` of the
    /// parameter buffer (`c`), and the bias sums update `b` at `b_off` (`bias_off`).
    pub fn fc_sgd_step(batch: usize, inp: usize, out: usize, w_off: usize, b_off: usize) -> Gemm {
        let mut g = Self::fc_backward_weights(batch, inp, out, w_off, false);
        g.params.bias_off = b_off as u32;
        g
    }

    /// `dX = dZ·W` (⊙ `[A_prev > 0]`): `a = dZ [B, OUT]`, `b = W [OUT, IN]` at `w_off`,
    /// `mask = A_prev [B, IN]`, `c = dX [B, IN]`.
    pub fn fc_backward_input(batch: usize, inp: usize, out: usize, w_off: usize, mask: bool) -> Gemm {
        Gemm::new(
            Layout::Nn,
            GemmParams {
                m: batch as u32,
                n: inp as u32,
                k: out as u32,
                flags: if mask { Self::MASK } else { 0 },
                a_sm: out as u32,
                a_sk: 1,
                b_off: w_off as u32,
                b_sk: inp as u32,
                b_sn: 1,
                c_sm: inp as u32,
                ..Default::default()
            },
        )
    }
}

/// Which operand is transposed, as `gemm_vec4.wgsl`'s entry points name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `Aᵀ·B`, both row-contiguous (the weight gradient; the forward product and the
    /// input gradient from `Xᵀ` or `dZᵀ` where [`Gemm::transposes_a`]).
    Tn,
    /// `A·B` (the forward product on `Wᵀ` and the input gradient otherwise).
    Nn,
    /// `A·Bᵀ`, both row-contiguous (the forward product on `W` itself, small batches).
    Nt,
}

/// The element types of a product's operands `A` and `B` (`C`, the bias and the mask are
/// always f32, and every kernel widens its loads to f32 and accumulates in f32): what
/// `--precision mixed` changes. The kernels of each kind are one source built with
/// [`Self::prelude`], which names the types `AT` and `BT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operands {
    /// Both f32.
    F32,
    /// Both f16: mixed precision's forward product (`X` or an im2col convolution's
    /// patches, and `Wᵀ`, or `W`).
    F16,
    /// `A` f32, `B` f16: mixed precision's weight gradient (`dZ` with `X` or the patches)
    /// and input gradient (`dZ` with `W`).
    F32F16,
}

impl Operands {
    /// Whether `A` and whether `B` hold f16 values.
    pub fn f16(self) -> (bool, bool) {
        match self {
            Operands::F32 => (false, false),
            Operands::F16 => (true, true),
            Operands::F32F16 => (false, true),
        }
    }

    /// The WGSL put before the product kernels' sources: the `f16` extension where an
    /// operand is f16, and the aliases `AT`, `BT` of `A`'s and `B`'s element types.
    pub fn prelude(self) -> &'static str {
        match self {
            Operands::F32 => "alias AT = f32;\nalias BT = f32;\n",
            Operands::F16 => "enable f16;\nalias AT = f16;\nalias BT = f16;\n",
            Operands::F32F16 => "enable f16;\nalias AT = f32;\nalias BT = f16;\n",
        }
    }
}

/// One matrix product: its parameters, its layout and its operands' element types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gemm {
    pub params: GemmParams,
    pub layout: Layout,
    pub operands: Operands,
}

impl Gemm {
    fn new(layout: Layout, params: GemmParams) -> Self {
        Gemm { params, layout, operands: Operands::F32 }
    }

    /// The same product with operands of these element types (the buffers bound as `a`
    /// and `b` must hold them, at the same element offsets and strides).
    pub fn with_operands(mut self, operands: Operands) -> Self {
        self.operands = operands;
        self
    }

    /// This `A·B` product (`A` row-major, `a_sk` = 1) as `(Aᵀ)ᵀ·B`, an `Aᵀ·B` product
    /// reading `A`'s transpose `[K, M]` (`a_sm` = 1, `a_sk` = M, from offset 0) — for the
    /// forward product `Xᵀ: [IN, B]`, for the input gradient `dZᵀ: [OUT, B]`, as
    /// `transpose.wgsl` writes them — so the vec4 kernel loads `A` as vec4s of four rows
    /// (`gemm_tn`) instead of one value per row. The same sums in the same order, so the
    /// same bits. A training step takes it where [`Self::transposes_a`].
    pub fn a_transposed(mut self) -> Self {
        debug_assert!(self.layout == Layout::Nn && self.params.a_sk == 1);
        self.layout = Layout::Tn;
        (self.params.a_off, self.params.a_sm, self.params.a_sk) = (0, 1, self.params.m);
        self
    }

    /// Whether a training step computes this `A·B` product (the forward or input-gradient
    /// one of a Linear node) from `Aᵀ` ([`Self::a_transposed`]): f32 operands, more than
    /// [`SMALL_BATCH`] rows and the `Aᵀ·B` form [`Self::aligned`] — M (the batch), N, `B`'s
    /// offset and row stride multiples of 4.
    /// `gemm_nn` loads `A` one value per row and per k, `gemm_tn` as vec4s of four rows,
    /// and llvmpipe pays every load per lane: `bench --gemm` on `small`'s layer 0 forward
    /// product, 7.9 ms as `gemm_nn` and 5.6 ms as `gemm_tn` from `Xᵀ` (whose transpose takes
    /// 0.3 ms); whole steps with the fixed kernels, 8 rounds alternated: `small` 5,839 →
    /// 6,250 samples/s (medians), `wide` 749 → 843.
    pub fn transposes_a(&self) -> bool {
        self.layout == Layout::Nn
            && self.operands == Operands::F32
            && self.params.a_sk == 1
            && self.params.m as usize > SMALL_BATCH
            && self.a_transposed().aligned()
    }

    /// Whether every stride, offset and contiguous extent the vec4 kernel loads along is
    /// a multiple of 4.
    pub fn aligned(&self) -> bool {
        let p = &self.params;
        let all4 = |v: &[u32]| v.iter().all(|x| x % 4 == 0);
        all4(&[p.b_off])
            && match self.layout {
                Layout::Tn => all4(&[p.a_off, p.m, p.n, p.a_sk, p.b_sk]),
                Layout::Nn => all4(&[p.n, p.b_sk]),
                Layout::Nt => false,
            }
    }

    /// Whether `gemm_tn_u64` (`gemm_u64.wgsl`) can compute this product: an `Aᵀ·B` of f32
    /// operands whose extents M and N, offsets and row strides are multiples of 8, so each
    /// of its 64-bit loads is 8 whole values of one row of `A` or `B`.
    pub fn loads_u64(&self) -> bool {
        let p = &self.params;
        self.layout == Layout::Tn
            && self.operands == Operands::F32
            && [p.m, p.n, p.a_off, p.b_off, p.a_sk, p.b_sk].iter().all(|x| x % 8 == 0)
    }

    /// Whether `gemm_tn_row` computes this product: an `Aᵀ·B` of f32 operands, no flag but
    /// ACCUMULATE, K at most [`SMALL_BATCH`] and rows of `B` and `C` of whole vec4s — the
    /// weight gradient of a batch of at most that many rows, or the input gradient from
    /// `dZᵀ` of a layer with that many outputs and no mask.
    pub fn tn_row(&self) -> bool {
        let p = &self.params;
        let all4 = |v: &[u32]| v.iter().all(|x| x % 4 == 0);
        self.layout == Layout::Tn
            && self.operands == Operands::F32
            && p.k as usize <= SMALL_BATCH
            && p.flags & !GemmParams::ACCUMULATE == 0
            && all4(&[p.n, p.b_off, p.b_sk, p.c_off, p.c_sm])
    }
}
