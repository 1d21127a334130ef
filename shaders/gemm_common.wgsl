// Shared by gemm.wgsl, gemm_tiled.wgsl, gemm_vec4.wgsl (and gemm_subgroup.wgsl after it),
// gemm_u64.wgsl and gemm_tn_row.wgsl (prepended to each when the module is built): the fully connected
// layer's three matrix products, as one strided product with a fused epilogue:
//
//   C[m, n] = epilogue( Σ_k A(m, k) · B(k, n) )
//   A(m, k) = a[a_off + m·a_sm + k·a_sk]      B(k, n) = b[b_off + k·b_sk + n·b_sn]
//   epilogue: (+ bias[bias_off + n]) (+ C[m, n] if accumulating) (max(·, 0)) (· [mask[m, n] > 0])
//   C[m, n] = c[c_off + m·c_sm + n],   mask[m, n] = mask[mask_off + m·c_sm + n]
//
// Used as (W: [OUT, IN] row-major, Wᵀ: [IN, OUT] from transpose.wgsl, X: [B, IN], dZ: [B, OUT]):
//   fc_forward          Z  = X·(Wᵀ) + b (ReLU)  M=B,   N=OUT, K=IN   bias, relu
//                       (batches of at most 4 rows read W itself: b_sk = 1, b_sn = IN)
//   fc_backward_weights dW = dZᵀ·X              M=OUT, N=IN,  K=B    accumulate (chunks)
//                       (a plain-SGD step of at most 4 rows applies it to W in place, and
//                       updates b at bias_off too: fc_sgd_step, gemm_tn_row.wgsl)
//   fc_backward_input   dX = dZ·W ⊙ [A>0]       M=B,   N=IN,  K=OUT  mask
//   (f32 steps of whole vec4s read X and dZ transposed, Xᵀ: [IN, B], dZᵀ: [OUT, B], as the
//   Aᵀ of gemm_tn: a_sm = 1, a_sk = B; `Gemm::a_transposed`; where every extent, offset
//   and stride is a multiple of 8, gemm_u64.wgsl's gemm_tn_u64 reads them as 64-bit words)
//
// A and B hold AT and BT values, aliases put before this file (`Operands::prelude` in
// src/gpu/gemm.rs): f32, or f16 for mixed precision's operands (X and W in the forward
// product, X or W as B in the gradients; gemm_tn_row.wgsl and gemm_u64.wgsl are built for
// f32 alone, with their own bindings, and without the aliases, which nothing prepended
// uses). Every kernel widens each load to f32 and runs
// the same f32 fma chain, so on f16 values it gives the f32 kernel's bits on the same
// values widened. C, the bias and the mask are always f32.
//
// Bindings: 0 params (uniform), 1 a, 2 b (declared by each kernel file), 3 bias, 4 mask
// (read), 5 c (read_write; declared with the epilogue, gemm_epilogue.wgsl, or by the
// kernel file that stores vec4s).

struct Params {
    m: u32, n: u32, k: u32, flags: u32,
    a_off: u32, a_sm: u32, a_sk: u32, bias_off: u32,
    b_off: u32, b_sk: u32, b_sn: u32, mask_off: u32,
    c_off: u32, c_sm: u32, _pad0: u32, _pad1: u32,
}

const BIAS: u32 = 1u;
const RELU: u32 = 2u;
const ACCUMULATE: u32 = 4u;
const MASK: u32 = 8u;

override WG: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
