// fc_backward_bias, the bias gradient of a fully connected layer (forward: Z = X·Wᵀ + b):
//   db[o] = Σ_n dZ[n, o]   (added to what is there when accumulating over chunks)
// dz: [B, OUT]; db lives at grads[db_off .. db_off + OUT].
// Bindings: 0 params, 1 dz (read), 2 grads (read_write). One invocation per output unit,
// summing n in increasing order; workgroup 64, dispatch (⌈OUT/64⌉, 1, 1).

struct Params { batch: u32, out: u32, db_off: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(64)
fn fc_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    if (o >= p.out) {
        return;
    }
    var s = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        s += dz[n * p.out + o];
    }
    if (p.accumulate != 0u) {
        s = grads[p.db_off + o] + s;
    }
    grads[p.db_off + o] = s;
}
