// gemm_tn_u64  C = Aᵀ·B, A: [K, M], B: [K, N], both row-contiguous, as gemm_vec4.wgsl's
// gemm_tn computes it (contract and Params in gemm_common.wgsl, the epilogue in
// gemm_epilogue.wgsl, the 8×8 block in gemm_block.wgsl, all prepended), with A and B read
// through 64-bit words: each load is a vec4<u64> holding 8 consecutive f32 values, the
// low word of each u64 first (little-endian), so per k one load gives the block's 8 rows
// of A and one its 8 columns of B, where gemm_tn makes four vec4<f32> loads.
//
// Why: llvmpipe (Mesa 25.0) turns every storage-buffer load whose address varies across
// the lanes into a loop over the lanes that tests each lane's execution-mask bit, reloads
// the binding's base and size, compares and branches, then loads one component — about
// twelve instructions per lane and per component, whatever the component's width. A u64
// component carries two f32 values for the price of one, which halves the load work per
// multiply-add (`bench --gemm`, `small`'s layer 0: the forward product from Xᵀ 6.5 → 3.7
// ms, the weight gradient 7.0 → 5.4 ms). Needs SHADER_INT64; built for f32 operands.
//
// Needs M, N, a_off, b_off, a_sk, b_sk ≡ 0 (mod 8), so every load is a whole aligned
// vec4<u64> inside its matrix and no row or column is clamped (products with other shapes
// take gemm_tn). The sums are gemm_tn's fma chains over k in increasing order, on the
// same values (bitcast is exact), so the same bits. Workgroup WG×WG; one group covers
// (8·WG) rows × (8·WG) columns; dispatch (⌈N/(8·WG)⌉, ⌈M/(8·WG)⌉, 1).

@group(0) @binding(1) var<storage, read> a: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<u64>>;

// The f32 values in the low and the high word of w.
fn low_f32(w: u64) -> f32 {
    return bitcast<f32>(u32(w & 0xfffffffflu));
}

fn high_f32(w: u64) -> f32 {
    return bitcast<f32>(u32(w >> 32u));
}

// x += A(m0..m0+7, k)ᵀ · B(k, n0..n0+7), from the 8 values of each in av and bv.
fn outer_u64(x: Block, av: vec4<u64>, bv: vec4<u64>) -> Block {
    let lo = vec4<f32>(low_f32(bv.x), high_f32(bv.x), low_f32(bv.y), high_f32(bv.y));
    let hi = vec4<f32>(low_f32(bv.z), high_f32(bv.z), low_f32(bv.w), high_f32(bv.w));
    return outer(
        x,
        low_f32(av.x), high_f32(av.x), low_f32(av.y), high_f32(av.y),
        low_f32(av.z), high_f32(av.z), low_f32(av.w), high_f32(av.w),
        lo, hi,
    );
}

@compute @workgroup_size(WG, WG)
fn gemm_tn_u64(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 8u;
    let n0 = gid.x * 8u;
    if (m0 >= p.m || n0 >= p.n) {
        return;
    }
    let ai = (p.a_off + m0) / 8u;
    let bi = (p.b_off + n0) / 8u;
    let ask = p.a_sk / 8u;
    let bsk = p.b_sk / 8u;
    var x: Block;
    for (var kk = 0u; kk < p.k; kk++) {
        x = outer_u64(x, a[ai + kk * ask], b[bi + kk * bsk]);
    }
    store(m0, n0, x);
}
