// The generic matrix product (contract and Params in gemm_common.wgsl, the epilogue in
// gemm_epilogue.wgsl, both prepended): any strides and shapes. Workgroup WG×WG invocations, each holding a 4×4
// block of C in registers, so one workgroup covers a (4·WG)×(4·WG) tile; dispatch
// (⌈N/(4·WG)⌉, ⌈M/(4·WG)⌉, 1). Ragged edges: loads clamp to the last row/column (always
// in bounds) and stores are guarded. The sum over k runs in increasing k with one fma
// per term: a fixed order, so the same inputs give the same bits on the same adapter.

@group(0) @binding(1) var<storage, read> a: array<AT>;
@group(0) @binding(2) var<storage, read> b: array<BT>;

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
        let bv = vec4<f32>(f32(b[b0 + bk]), f32(b[b1 + bk]), f32(b[b2 + bk]), f32(b[b3 + bk]));
        c0 = fma(vec4<f32>(f32(a[a0 + ak])), bv, c0);
        c1 = fma(vec4<f32>(f32(a[a1 + ak])), bv, c1);
        c2 = fma(vec4<f32>(f32(a[a2 + ak])), bv, c2);
        c3 = fma(vec4<f32>(f32(a[a3 + ak])), bv, c3);
        ak += p.a_sk;
        bk += p.b_sk;
    }

    let rows = array<vec4<f32>, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (m0 + i < p.m && n0 + j < p.n) {
                epilogue(m0 + i, n0 + j, rows[i][j]);
            }
        }
    }
}

// gemm_nt_row  C = A·Bᵀ with B: [N, K] (B(k, n) = b[b_off + n·b_sn + k]): the forward
// product reading W [OUT, IN] itself, with no transpose, for batches of at most 4 rows
// (`SMALL_BATCH`). Needs a_sk = b_sk = 1 (rows of X and of W contiguous along k); any
// shape. Each invocation computes 2 columns n0, n0+1 of one row m of C: per element the
// fma chain of gemm_nn_row (0, then acc = fma(A(m, k), B(k, n), acc) for k = 0, 1, …,
// K−1) and the same epilogue, so the same bits as the transposed product. k runs 4 at a
// time (a scalar tail for K mod 4): on a software adapter neighbouring invocations are
// SIMD lanes whose rows of W lie IN floats apart, so every load of W is a gather, which
// the unrolled body amortises. Workgroup NT_WG; dispatch (⌈N/(2·NT_WG)⌉, M, 1).

const NT_WG: u32 = 32u;

// Elements k..k+3 of the row of B that starts at offset r.
fn b4(r: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(f32(b[r + k]), f32(b[r + k + 1u]), f32(b[r + k + 2u]), f32(b[r + k + 3u]));
}

@compute @workgroup_size(NT_WG)
fn gemm_nt_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = wid.y;
    let n0 = gid.x * 2u;
    if (n0 >= p.n) {
        return;
    }
    let am = p.a_off + m * p.a_sm;
    let r0 = p.b_off + n0 * p.b_sn;
    let r1 = p.b_off + min(n0 + 1u, p.n - 1u) * p.b_sn;
    var acc = vec2<f32>();
    var k = 0u;
    for (; k + 4u <= p.k; k += 4u) {
        let x = vec4<f32>(f32(a[am + k]), f32(a[am + k + 1u]), f32(a[am + k + 2u]), f32(a[am + k + 3u]));
        let w0 = b4(r0, k);
        let w1 = b4(r1, k);
        acc = fma(vec2<f32>(x.x), vec2<f32>(w0.x, w1.x), acc);
        acc = fma(vec2<f32>(x.y), vec2<f32>(w0.y, w1.y), acc);
        acc = fma(vec2<f32>(x.z), vec2<f32>(w0.z, w1.z), acc);
        acc = fma(vec2<f32>(x.w), vec2<f32>(w0.w, w1.w), acc);
    }
    for (; k < p.k; k++) {
        acc = fma(vec2<f32>(f32(a[am + k])), vec2<f32>(f32(b[r0 + k]), f32(b[r1 + k])), acc);
    }
    epilogue(m, n0, acc.x);
    if (n0 + 1u < p.n) {
        epilogue(m, n0 + 1u, acc.y);
    }
}
