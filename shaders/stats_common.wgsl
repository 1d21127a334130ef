// The device-side metrics block (prepended to stats.wgsl, optim.wgsl and gemm_tn_row.wgsl;
// mirrored by
// `gpu::kernels::Stats`): sums since the last read-back, and the current step's flag.
struct Stats {
    loss_sum: f32,
    correct: u32,
    samples: u32,
    bad_steps: u32,
    step_bad: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}
