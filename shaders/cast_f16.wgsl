// cast_f16: the f16 copy of an f32 buffer's first `len` values, which mixed precision's
// matrix products read (`--precision mixed`: the parameters, each Linear node's input,
// each im2col convolution's patches):
//   dst[i] = to_f16(src[i])   for i < len
// (to_f16: f16_common.wgsl, put before this file with the grid prelude: saturating,
// rounding to a nearest f16, non-finite for a non-finite value.)
// Bindings: 0 params, 1 src (read), 2 dst (read_write). Each invocation casts 4
// consecutive values; workgroup LINEAR_WG; dispatch linear_groups(⌈len/4⌉, LINEAR_WG).

struct Params { len: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f16>;

@compute @workgroup_size(LINEAR_WG)
fn cast_f16(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = linear_index(gid) * 4u;
    let end = min(i0 + 4u, p.len);
    for (var i = i0; i < end; i++) {
        dst[i] = to_f16(src[i]);
    }
}
