// Input: gathers the batch's rows idx[n] of a sample table into x: [B, D] as f32, and
// their labels into y: [B] (CPU twins `gather_u8`, `gather_f32`).
//   gather_u8:           x[n, j] = f32(src[idx[n]·D + j]) · (1/255)   (bytes packed 4 per
//                        u32, little-endian, so pixels travel and stay resident as u8),
//                        for D ≡ 0 (mod 4): one source word → one vec4 of x per invocation
//   gather_u8_unaligned: the same for any D, one byte per invocation (4× the invocations)
//   gather_f32:          x[n, j] = src[idx[n]·D + j]
// The source is either the whole data set resident on the device (idx = this batch's
// slice of the epoch's permutation) or one streamed batch (idx = 0, 1, …, B−1).
// Bindings: 0 params, 1 src, 2 labels, 3 idx (read), 4 x, 5 y (read_write).
// Workgroup 64; dispatch gather_u8 (⌈D/256⌉, B, 1), the others (⌈D/64⌉, B, 1).

struct Params { batch: u32, width: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src_u8: array<u32>;
@group(0) @binding(1) var<storage, read> src_f32: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> x4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(64)
fn gather_u8(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = p.width / 4u;
    let j = gid.x;
    let n = gid.y;
    if (j >= w || n >= p.batch) {
        return;
    }
    let row = idx[n];
    let word = src_u8[row * w + j];
    let bytes = vec4<u32>(word & 0xffu, (word >> 8u) & 0xffu, (word >> 16u) & 0xffu, word >> 24u);
    x4[n * w + j] = vec4<f32>(bytes) * (1.0 / 255.0);
    if (j == 0u) {
        y[n] = labels[row];
    }
}

@compute @workgroup_size(64)
fn gather_u8_unaligned(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = gid.y;
    if (j >= p.width || n >= p.batch) {
        return;
    }
    let row = idx[n];
    let at = row * p.width + j;
    let byte = (src_u8[at / 4u] >> ((at % 4u) * 8u)) & 0xffu;
    x[n * p.width + j] = f32(byte) * (1.0 / 255.0);
    if (j == 0u) {
        y[n] = labels[row];
    }
}

@compute @workgroup_size(64)
fn gather_f32(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = gid.y;
    if (j >= p.width || n >= p.batch) {
        return;
    }
    let row = idx[n];
    x[n * p.width + j] = src_f32[row * p.width + j];
    if (j == 0u) {
        y[n] = labels[row];
    }
}
