// ReLU, element-wise over `len` values:
//   relu_forward:  out = max(z, 0)
//   relu_backward: out = da ⊙ [z > 0]      (forward: a = max(z, 0))
// The training step fuses both into the matrix products where it can (gemm.wgsl's and
// conv2d.wgsl's RELU and MASK); these stand-alone kernels run a `ReLU` node, and a fused
// ReLU's mask after max-pooling or dropout routed the gradient (out = dz[i−1], da the
// routed gradient, z = acts[i−1]). Built on first use (Kernels::on_demand).
// Bindings: 0 params, 1 z, 2 da (read), 3 out (read_write). Workgroup LINEAR_WG (256);
// dispatch (min(⌈len/LINEAR_WG⌉, GRID_X), ⌈…/GRID_X⌉, 1), flattened by linear_index
// (GRID_X, LINEAR_WG and linear_index: the grid prelude, generated from
// `gpu::kernels` and prepended).

struct Params { len: u32, _pad0: u32, _pad1: u32, _pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> da: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(LINEAR_WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if (i < p.len) {
        out[i] = max(z[i], 0.0);
    }
}

@compute @workgroup_size(LINEAR_WG)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if (i < p.len) {
        out[i] = select(0.0, da[i], z[i] > 0.0);
    }
}
