// The optimizer's parameter block (mirrored by `gpu::kernels::OptimParams`) and the SGD
// rule, prepended to optim.wgsl and gemm_tn_row.wgsl: the fused steps of small batches
// (gemm_tn_row_sgd) update a parameter with the very operations of optimizer_update_sgd.

struct OptimParams {
    vec4s: u32, nesterov: u32, decoupled: u32, _pad: u32,
    lr: f32, momentum: f32, beta1: f32, beta2: f32,
    eps: f32, weight_decay: f32, step_size: f32, sqrt_bc2: f32,
}

// SGD on 4 parameters: w − α (g + λ w).
fn sgd4(w: vec4<f32>, g: vec4<f32>, lr: f32, weight_decay: f32) -> vec4<f32> {
    let gi = g + weight_decay * w;
    return w - lr * gi;
}
