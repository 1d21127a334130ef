// The scalar epilogue of the matrix products (gemm_common.wgsl's contract), prepended
// after gemm_common.wgsl to gemm.wgsl, gemm_tiled.wgsl, gemm_vec4.wgsl (and
// gemm_subgroup.wgsl after it) and gemm_u64.wgsl: the bias, mask and C bindings
// and the function that finishes and stores one element of C.

@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

// Finishes C[m, n] from its sum `acc` as the flags say, and stores it.
fn epilogue(m: u32, n: u32, acc: f32) {
    let at = p.c_off + m * p.c_sm + n;
    var v = acc;
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
