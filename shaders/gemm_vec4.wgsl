// The fully connected layer's matrix products (contract and Params in gemm_common.wgsl,
// the epilogue in gemm_epilogue.wgsl, the 8×8 block in gemm_block.wgsl, all prepended),
// specialised for shapes whose output rows are
// vec4-aligned. Each invocation holds an 8×8 block of C in sixteen vec4 registers and, for
// each k, adds the outer product of 8 values of A (one per row) with 8 contiguous values
// of B (two vec4 loads). No
// workgroup memory and no barriers: on a software adapter (llvmpipe) the CPU's caches do
// the tiling, and contiguous vec4 loads with register blocking are what pay (measured
// with `wgtrain bench --gemm`). Workgroup WG×WG; one group covers (8·WG) rows × (8·WG)
// columns; dispatch (⌈N/(8·WG)⌉, ⌈M/(8·WG)⌉, 1).
//
//   gemm_tn  C = Aᵀ·B, A: [K, M], B: [K, N], both row-contiguous   (dW = dZᵀ·X; and
//            Z = (Xᵀ)ᵀ·(Wᵀ), dX = (dZᵀ)ᵀ·W from the transposes, `Gemm::transposes_a`)
//            needs M, N, a_sk, b_sk, a_off, b_off ≡ 0 (mod 4)
//   gemm_nn  C = A·B, any A strides, B: [K, N] row-contiguous       (Z = X·(Wᵀ), dX = dZ·W)
//            needs N, b_sk, b_off ≡ 0 (mod 4)
//   gemm_nn_row  gemm_nn for M < 8 (a batch of a few rows; pure SGD's is 1): one row of C
//            per invocation (8 columns, lo and hi), so no clamped rows are computed; each
//            element is the same fma chain over k as in gemm_nn, so the same bits.
//            Workgroup ROW_WG × 1; dispatch (⌈N/(8·ROW_WG)⌉, M, 1).
//
// Buffers are padded to 16 bytes, so a vec4 never straddles a binding's end. Ragged M
// and N: loads clamp to the last valid row or vec4 and the epilogue stores only inside
// C. Sums run over k in increasing order: a fixed order.

@group(0) @binding(1) var<storage, read> a: array<vec4<AT>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<BT>>;

// A's element i, read through its vec4 binding.
fn scalar_a(i: u32) -> f32 {
    return f32(a[i / 4u][i % 4u]);
}

@compute @workgroup_size(WG, WG)
fn gemm_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 8u;
    let n0 = gid.x * 8u;
    if (m0 >= p.m || n0 >= p.n) {
        return;
    }
    let ai = (p.a_off + m0) / 4u;
    let ai2 = (p.a_off + min(m0 + 4u, p.m - 4u)) / 4u;
    let bl = (p.b_off + n0) / 4u;
    let bh = (p.b_off + min(n0 + 4u, p.n - 4u)) / 4u;
    let ask = p.a_sk / 4u;
    let bsk = p.b_sk / 4u;
    var x: Block;
    for (var kk = 0u; kk < p.k; kk++) {
        let al = vec4<f32>(a[ai + kk * ask]);
        let ah = vec4<f32>(a[ai2 + kk * ask]);
        x = outer(x, al.x, al.y, al.z, al.w, ah.x, ah.y, ah.z, ah.w, vec4<f32>(b[bl + kk * bsk]), vec4<f32>(b[bh + kk * bsk]));
    }
    store(m0, n0, x);
}

const ROW_WG: u32 = 16u;

@compute @workgroup_size(ROW_WG)
fn gemm_nn_row(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.y;
    let n0 = gid.x * 8u;
    if (m >= p.m || n0 >= p.n) {
        return;
    }
    let am = p.a_off + m * p.a_sm;
    let bl = (p.b_off + n0) / 4u;
    let bh = (p.b_off + min(n0 + 4u, p.n - 4u)) / 4u;
    let bsk = p.b_sk / 4u;
    var lo = vec4<f32>();
    var hi = vec4<f32>();
    var ak = 0u;
    for (var k = 0u; k < p.k; k++) {
        let row = k * bsk;
        let av = vec4<f32>(scalar_a(am + ak));
        lo = fma(av, vec4<f32>(b[bl + row]), lo);
        hi = fma(av, vec4<f32>(b[bh + row]), hi);
        ak += p.a_sk;
    }
    store_row(m, n0, lo, hi);
}

@compute @workgroup_size(WG, WG)
fn gemm_nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 8u;
    let n0 = gid.x * 8u;
    if (m0 >= p.m || n0 >= p.n) {
        return;
    }
    let last_m = p.m - 1u;
    let a0 = p.a_off + m0 * p.a_sm;
    let a1 = p.a_off + min(m0 + 1u, last_m) * p.a_sm;
    let a2 = p.a_off + min(m0 + 2u, last_m) * p.a_sm;
    let a3 = p.a_off + min(m0 + 3u, last_m) * p.a_sm;
    let a4 = p.a_off + min(m0 + 4u, last_m) * p.a_sm;
    let a5 = p.a_off + min(m0 + 5u, last_m) * p.a_sm;
    let a6 = p.a_off + min(m0 + 6u, last_m) * p.a_sm;
    let a7 = p.a_off + min(m0 + 7u, last_m) * p.a_sm;
    let bl = (p.b_off + n0) / 4u;
    let bh = (p.b_off + min(n0 + 4u, p.n - 4u)) / 4u;
    let bsk = p.b_sk / 4u;
    var x: Block;
    var ak = 0u;
    for (var k = 0u; k < p.k; k++) {
        let row = k * bsk;
        x = outer(x, scalar_a(a0 + ak), scalar_a(a1 + ak), scalar_a(a2 + ak), scalar_a(a3 + ak), scalar_a(a4 + ak), scalar_a(a5 + ak), scalar_a(a6 + ak), scalar_a(a7 + ak), vec4<f32>(b[bl + row]), vec4<f32>(b[bh + row]));
        ak += p.a_sk;
    }
    store(m0, n0, x);
}
