// The 8×8 register block of C that gemm_vec4.wgsl's kernels, gemm_subgroup.wgsl and
// gemm_u64.wgsl hold per invocation (prepended to each after gemm_epilogue.wgsl, before the
// kernel file; it declares no binding, so each kernel file types `a` and `b` its own way):
// sixteen vec4 accumulators, the outer-product update of one k, and the stores through
// the scalar epilogue, which write only the block's elements inside C (ragged M and N).

// The 8×8 block: row i in (lo, hi) = columns n0..n0+3, n0+4..n0+7.
struct Block {
    r0l: vec4<f32>, r0h: vec4<f32>,
    r1l: vec4<f32>, r1h: vec4<f32>,
    r2l: vec4<f32>, r2h: vec4<f32>,
    r3l: vec4<f32>, r3h: vec4<f32>,
    r4l: vec4<f32>, r4h: vec4<f32>,
    r5l: vec4<f32>, r5h: vec4<f32>,
    r6l: vec4<f32>, r6h: vec4<f32>,
    r7l: vec4<f32>, r7h: vec4<f32>,
}

fn store_row(m: u32, n0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (n0 + j < p.n) {
            epilogue(m, n0 + j, lo[j]);
        }
        if (n0 + 4u + j < p.n) {
            epilogue(m, n0 + 4u + j, hi[j]);
        }
    }
}

fn store(m0: u32, n0: u32, x: Block) {
    store_row(m0 + 0u, n0, x.r0l, x.r0h);
    store_row(m0 + 1u, n0, x.r1l, x.r1h);
    store_row(m0 + 2u, n0, x.r2l, x.r2h);
    store_row(m0 + 3u, n0, x.r3l, x.r3h);
    store_row(m0 + 4u, n0, x.r4l, x.r4h);
    store_row(m0 + 5u, n0, x.r5l, x.r5h);
    store_row(m0 + 6u, n0, x.r6l, x.r6h);
    store_row(m0 + 7u, n0, x.r7l, x.r7h);
}

// x += [a0 … a7]ᵀ · [lo hi]: one k's outer-product update of the 8×8 block.
fn outer(x: Block, a0: f32, a1: f32, a2: f32, a3: f32, a4: f32, a5: f32, a6: f32, a7: f32, lo: vec4<f32>, hi: vec4<f32>) -> Block {
    var y = x;
    y.r0l = fma(vec4<f32>(a0), lo, y.r0l);
    y.r0h = fma(vec4<f32>(a0), hi, y.r0h);
    y.r1l = fma(vec4<f32>(a1), lo, y.r1l);
    y.r1h = fma(vec4<f32>(a1), hi, y.r1h);
    y.r2l = fma(vec4<f32>(a2), lo, y.r2l);
    y.r2h = fma(vec4<f32>(a2), hi, y.r2h);
    y.r3l = fma(vec4<f32>(a3), lo, y.r3l);
    y.r3h = fma(vec4<f32>(a3), hi, y.r3h);
    y.r4l = fma(vec4<f32>(a4), lo, y.r4l);
    y.r4h = fma(vec4<f32>(a4), hi, y.r4h);
    y.r5l = fma(vec4<f32>(a5), lo, y.r5l);
    y.r5h = fma(vec4<f32>(a5), hi, y.r5h);
    y.r6l = fma(vec4<f32>(a6), lo, y.r6l);
    y.r6h = fma(vec4<f32>(a6), hi, y.r6h);
    y.r7l = fma(vec4<f32>(a7), lo, y.r7l);
    y.r7h = fma(vec4<f32>(a7), hi, y.r7h);
    return y;
}
