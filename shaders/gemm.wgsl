// The fully connected layer's three matrix products, as one strided product with a
// fused epilogue:
//
//   C[m, n] = epilogue( Σ_k A(m, k) · B(k, n) )
//   A(m, k) = a[a_off + m·a_sm + k·a_sk]      B(k, n) = b[b_off + k·b_sk + n·b_sn]
//   epilogue: (+ bias[bias_off + n]) (+ C[m, n] if accumulating) (max(·, 0)) (· [mask[m, n] > 0])
//   C[m, n] = c[c_off + m·c_sm + n],   mask[m, n] = mask[mask_off + m·c_sm + n]
//
// Used as (W: [OUT, IN] row-major, X: [B, IN], dZ: [B, OUT]):
//   fc_forward          Z  = X·Wᵀ + b (ReLU)   M=B,   N=OUT, K=IN   bias, relu
//   fc_backward_weights dW = dZᵀ·X             M=OUT, N=IN,  K=B    accumulate (chunks)
//   fc_backward_input   dX = dZ·W ⊙ [A>0]      M=B,   N=IN,  K=OUT  mask
//
// Bindings: 0 params (uniform), 1 a, 2 b, 3 bias, 4 mask (read), 5 c (read_write).
// Workgroup WG×WG invocations, each holding a 4×4 block of C in registers, so one
// workgroup covers a (4·WG)×(4·WG) tile; dispatch (⌈N/(4·WG)⌉, ⌈M/(4·WG)⌉, 1). Ragged
// edges: loads clamp to the last row/column (always in bounds) and stores are guarded.
// The sum over k runs in increasing k with one fma per term: a fixed order, so the same
// inputs give the same bits on the same adapter.

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
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(WG, WG)
fn gemm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    if (m0 >= p.m || n0 >= p.n) {
        return;
    }
    let a0 = p.a_off + m0 * p.a_sm;
    let a1 = p.a_off + min(m0 + 1u, p.m - 1u) * p.a_sm;
    let a2 = p.a_off + min(m0 + 2u, p.m - 1u) * p.a_sm;
    let a3 = p.a_off + min(m0 + 3u, p.m - 1u) * p.a_sm;
    let b0 = p.b_off + n0 * p.b_sn;
    let b1 = p.b_off + min(n0 + 1u, p.n - 1u) * p.b_sn;
    let b2 = p.b_off + min(n0 + 2u, p.n - 1u) * p.b_sn;
    let b3 = p.b_off + min(n0 + 3u, p.n - 1u) * p.b_sn;

    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var ak = 0u;
    var bk = 0u;
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(b[b0 + bk], b[b1 + bk], b[b2 + bk], b[b3 + bk]);
        c0 = fma(vec4<f32>(a[a0 + ak]), bv, c0);
        c1 = fma(vec4<f32>(a[a1 + ak]), bv, c1);
        c2 = fma(vec4<f32>(a[a2 + ak]), bv, c2);
        c3 = fma(vec4<f32>(a[a3 + ak]), bv, c3);
        ak += p.a_sk;
        bk += p.b_sk;
    }

    let rows = array<vec4<f32>, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + i;
        if (m >= p.m) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + j;
            if (n >= p.n) {
                break;
            }
            let at = p.c_off + m * p.c_sm + n;
            var v = rows[i][j];
            if ((p.flags & BIAS) != 0u) {
                v += bias[p.bias_off + n];
            }
            if ((p.flags & ACCUMULATE) != 0u) {
                v = c[at] + v;
            }
            if ((p.flags & RELU) != 0u) {
                v = max(v, 0.0);
            }
            if ((p.flags & MASK) != 0u && !(mask[p.mask_off + m * p.c_sm + n] > 0.0)) {
                v = 0.0;
            }
            c[at] = v;
        }
    }
}
