// Accumulates one batch's per-sample results into the device-side metrics, so the host
// reads them once per logging interval instead of every step:
//   stats.loss_sum += Σ_n loss[n];  stats.correct += Σ_n correct[n];  stats.samples += B
// A batch whose loss sum is not finite is not added; it raises stats.step_bad, which the
// optimizer kernels read to skip the update, and counts once in stats.bad_steps.
// `first_chunk` clears step_bad at the start of a step (a full-batch step spans chunks).
// Bindings: 0 params, 1 loss, 2 correct (read), 3 stats (read_write). A single invocation
// sums n in increasing order: a fixed order, no atomics, the same bits every run.
// `Stats` comes from stats_common.wgsl, prepended when the module is built.

struct Params { batch: u32, first_chunk: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> loss: array<f32>;
@group(0) @binding(2) var<storage, read> correct: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: Stats;

@compute @workgroup_size(1)
fn accumulate_stats() {
    if (p.first_chunk != 0u) {
        stats.step_bad = 0u;
    }
    var s = 0.0;
    var c = 0u;
    for (var n = 0u; n < p.batch; n++) {
        s += loss[n];
        c += correct[n];
    }
    // NaN fails every comparison, and ±inf fails this one.
    if (abs(s) <= 3.4028235e38) {
        stats.loss_sum += s;
        stats.correct += c;
        stats.samples += p.batch;
    } else if (stats.step_bad == 0u) {
        stats.step_bad = 1u;
        stats.bad_steps += 1u;
    }
}
