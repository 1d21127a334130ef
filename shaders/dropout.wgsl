// Inverted dropout (hash_common.wgsl is prepended); CPU twins of the same names in
// cpu::dropout:
//
//   dropout_forward   y[n, j]  = x[n, j]  · keep(n, j) · scale
//   dropout_backward  dx[n, j] = dy[n, j] · keep(n, j) · scale   (the same diagonal map)
//   keep(n, j) = dropout_hash(seed, epoch, samples[n], j) ≥ threshold
//
// with samples[n] row n's index in the dataset, threshold = round(p·2³²) and
// scale = 1/(1 − p) in f32, both computed on the host (rng::dropout_threshold,
// rng::dropout_scale) and passed here, so the CPU and the GPU keep the same elements and
// an f32 result is the same single rounded product on both. Counter-based: the mask of a
// sample does not depend on its batch or its row, and the backward redraws it (no stored
// mask).
//
//   dropout_hash_bits out[n, j] = dropout_hash(seed, epoch, samples[n], j) (for the test that
//                     the WGSL and Rust hashes agree bit for bit; x is not read)
//
// Outputs are stored as bit patterns (array<u32>) so the three entry points share one
// layout. Bindings: 0 params (uniform), 1 x (read), 2 samples (read, u32), 3 out
// (read_write). One invocation per element; workgroup 256, dispatch
// (min(⌈len/256⌉, 65535), ⌈…/65535⌉, 1), flattened as i = x + y·65535·256.

struct Params {
    len: u32, width: u32, seed_lo: u32, seed_hi: u32,
    epoch: u32, threshold: u32, scale: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> samples: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn hash_at(i: u32) -> u32 {
    return dropout_hash(p.seed_lo, p.seed_hi, p.epoch, samples[i / p.width], i % p.width);
}

fn apply(i: u32) {
    let keep = hash_at(i) >= p.threshold;
    out[i] = bitcast<u32>(select(0.0, x[i] * p.scale, keep));
}

@compute @workgroup_size(256)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 16776960u;
    if (i < p.len) {
        apply(i);
    }
}

@compute @workgroup_size(256)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 16776960u;
    if (i < p.len) {
        apply(i);
    }
}

@compute @workgroup_size(256)
fn dropout_hash_bits(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 16776960u;
    if (i < p.len) {
        out[i] = hash_at(i);
    }
}
