// Max-pooling over k×k windows, stride k (PyTorch's default), no padding, floor mode
// (H_out = ⌊H/k⌋, W_out = ⌊W/k⌋: rows and columns that fill no whole window are dropped).
// CPU twins of the same names in cpu::conv.
//
//   maxpool2d_forward   y[n,c,oh,ow] = max_{i,j<k} x[n,c,oh·k+i,ow·k+j]
//                       argmax[n,c,oh,ow] = the chosen input's index within its sample,
//                       (c·H + h)·W + w
//   maxpool2d_backward  dx[n,c,h,w] = dy[n,c,h/k,w/k] if the window holding (h, w) chose it,
//                       else 0 (inputs in no window, or not chosen)
//
// Ties go to the first maximum in row-major window order (PyTorch's choice): a later value
// replaces the current one only when strictly greater. NaN propagates: the first NaN in
// window order is taken and kept, so a window holding a NaN gives NaN and its argmax
// points at that NaN. NaN is tested on the bits (WGSL lets an implementation assume
// floats are never NaN, so `v != v` could be folded away).
//
// The backward is a gather: one invocation per input, which reads the argmax of the only
// window that can hold it (stride k: windows do not overlap, so no input receives two
// gradients and nothing is summed or written twice). It assumes argmax comes from the
// forward (each index inside its own window).
//
// Bindings, one layout for both: 0 params (uniform), 1 src (read: x, or dy),
// 2 argmax (read_write; the backward only reads it), 3 dst (read_write: y, or dx).
// One invocation per output (forward) or input (backward); workgroup 64, dispatch
// (min(⌈len/64⌉, 65535), ⌈…/65535⌉, 1), flattened as i = x + y·65535·64.

struct Params {
    batch: u32, c: u32, h: u32, w: u32,
    k: u32, h_out: u32, w_out: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> argmax: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(64)
fn maxpool2d_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * (65535u * 64u);
    let out_len = p.c * p.h_out * p.w_out;
    if (i >= p.batch * out_len) {
        return;
    }
    let n = i / out_len;
    let r = i % out_len;
    let c = r / (p.h_out * p.w_out);
    let oh = (r / p.w_out) % p.h_out;
    let ow = r % p.w_out;
    let xn = n * p.c * p.h * p.w;
    var best = 0.0;
    var arg = 0xffffffffu;
    for (var di = 0u; di < p.k; di++) {
        let row = (c * p.h + oh * p.k + di) * p.w + ow * p.k;
        for (var dj = 0u; dj < p.k; dj++) {
            let at = row + dj;
            let v = src[xn + at];
            if (arg == 0xffffffffu || (!is_nan(best) && (v > best || is_nan(v)))) {
                best = v;
                arg = at;
            }
        }
    }
    dst[i] = best;
    argmax[i] = arg;
}

@compute @workgroup_size(64)
fn maxpool2d_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * (65535u * 64u);
    let in_len = p.c * p.h * p.w;
    if (i >= p.batch * in_len) {
        return;
    }
    let n = i / in_len;
    let r = i % in_len;
    let c = r / (p.h * p.w);
    let oh = ((r / p.w) % p.h) / p.k;
    let ow = (r % p.w) / p.k;
    var g = 0.0;
    if (oh < p.h_out && ow < p.w_out) {
        let o = n * p.c * p.h_out * p.w_out + (c * p.h_out + oh) * p.w_out + ow;
        if (argmax[o] == r) {
            g = src[o];
        }
    }
    dst[i] = g;
}
