// Image augmentation of a training batch (hash_common.wgsl is prepended); CPU twin
// `augment` in data::augment, which states the draws once more:
//
//   augment   out[n, c, y, x] = x_in[n, c, y − dy, x′ − dx]   (0 outside the image)
//             x′ = W − 1 − x if flip else x
//             flip = flip_on ∧ (dropout_hash(seed, epoch, samples[n], 0xffffffff) & 1 = 1)
//             dy   = dropout_hash(…, 0xfffffffe) mod (2·shift + 1) − shift
//             dx   = dropout_hash(…, 0xfffffffd) mod (2·shift + 1) − shift
//
// with samples[n] row n's index in the data set: a counter-based draw, so it does not
// depend on the batch, and the CPU draws the same.
//
// Bindings: 0 params (uniform), 1 x_in (read), 2 samples (read, u32), 3 out (read_write).
// One invocation per output value; workgroup 256, dispatch (min(⌈len/256⌉, 65535),
// ⌈…/65535⌉, 1), flattened as i = x + y·65535·256.

struct Params {
    len: u32, c: u32, h: u32, w: u32,
    seed_lo: u32, seed_hi: u32, epoch: u32, flip: u32,
    shift: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x_in: array<f32>;
@group(0) @binding(2) var<storage, read> samples: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn augment(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 16776960u;
    if (i >= p.len) {
        return;
    }
    let plane = p.h * p.w;
    let len = p.c * plane;
    let n = i / len;
    let r = i % len;
    let ch = r / plane;
    let y = (r % plane) / p.w;
    let xx = r % p.w;
    let s = samples[n];
    let flip = p.flip != 0u && (dropout_hash(p.seed_lo, p.seed_hi, p.epoch, s, 0xffffffffu) & 1u) == 1u;
    let span = 2u * p.shift + 1u;
    let dy = i32(dropout_hash(p.seed_lo, p.seed_hi, p.epoch, s, 0xfffffffeu) % span) - i32(p.shift);
    let dx = i32(dropout_hash(p.seed_lo, p.seed_hi, p.epoch, s, 0xfffffffdu) % span) - i32(p.shift);
    let xf = select(xx, p.w - 1u - xx, flip);
    let ys = i32(y) - dy;
    let xs = i32(xf) - dx;
    var v = 0.0;
    if (ys >= 0 && ys < i32(p.h) && xs >= 0 && xs < i32(p.w)) {
        v = x_in[n * len + (ch * p.h + u32(ys)) * p.w + u32(xs)];
    }
    out[i] = v;
}
