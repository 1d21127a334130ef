// Optimizer updates over the flat parameter vector (PyTorch's semantics), one invocation
// per 4 parameters (vec4: a quarter of the invocations, which is what an element-wise
// kernel costs on a software adapter); CPU twin `optimizer_update`, one entry per rule.
// With g' = g + λ·w (coupled weight decay):
//   optimizer_update_sgd:      w ← w − α g'
//   optimizer_update_momentum: v ← μ v + g';  w ← w − α v   (nesterov: w ← w − α (g' + μ v))
//   optimizer_update_adam:     m ← β₁ m + (1−β₁) g';  v ← β₂ v + (1−β₂) g'²;
//                              w ← w − step_size · m / (√v / √(1−β₂ᵗ) + ε),  step_size = α / (1−β₁ᵗ)
//                              (decoupled, AdamW: g' = g and first w ← w (1 − αλ))
// The host computes step_size and √(1−β₂ᵗ) in f32 exactly as the CPU twin does.
// When stats.step_bad is set (a non-finite loss this step) nothing is updated.
// Bindings: 0 params (`OptimParams` and the SGD rule from optim_common.wgsl, prepended),
// 1 g, 2 stats (read; `Stats` from stats_common.wgsl, prepended), 3 w, 4 s1 (v or m),
// 5 s2 (v) (read_write).
// Buffers are padded to 16 bytes; the padding of g is zero, so padding never changes.
// Workgroup LINEAR_WG (256); dispatch (min(⌈vec4s/LINEAR_WG⌉, GRID_X), ⌈…/GRID_X⌉, 1),
// flattened by linear_index (the grid prelude, generated from `gpu::kernels`, prepended).

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(1) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> stats: Stats;
@group(0) @binding(3) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> s1: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> s2: array<vec4<f32>>;

@compute @workgroup_size(LINEAR_WG)
fn optimizer_update_sgd(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if (i >= p.vec4s || stats.step_bad != 0u) {
        return;
    }
    w[i] = sgd4(w[i], g[i], p.lr, p.weight_decay);
}

@compute @workgroup_size(LINEAR_WG)
fn optimizer_update_momentum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if (i >= p.vec4s || stats.step_bad != 0u) {
        return;
    }
    let gi = g[i] + p.weight_decay * w[i];
    let v = p.momentum * s1[i] + gi;
    s1[i] = v;
    var d = v;
    if (p.nesterov != 0u) {
        d = gi + p.momentum * v;
    }
    w[i] = w[i] - p.lr * d;
}

@compute @workgroup_size(LINEAR_WG)
fn optimizer_update_adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if (i >= p.vec4s || stats.step_bad != 0u) {
        return;
    }
    var wi = w[i];
    var gi = g[i];
    if (p.decoupled != 0u) {
        wi = wi * (1.0 - p.lr * p.weight_decay);
    } else {
        gi = gi + p.weight_decay * wi;
    }
    let m = p.beta1 * s1[i] + (1.0 - p.beta1) * gi;
    let v = p.beta2 * s2[i] + (1.0 - p.beta2) * gi * gi;
    s1[i] = m;
    s2[i] = v;
    let denom = sqrt(v) / p.sqrt_bc2 + p.eps;
    w[i] = wi - p.step_size * m / denom;
}
