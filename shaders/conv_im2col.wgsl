// The im2col path of a 2-D convolution (NCHW as PyTorch, square kernel k, stride s, zero
// padding p; shapes and Params as conv2d.wgsl, whose header states the convolution): the
// patches of a batch as a matrix, so that the three products are the fully connected
// layer's GEMMs (gemm_vec4.wgsl, run through GemmParams::fc_forward, fc_backward_weights
// and fc_backward_input with B·P rows of K inputs and C_out outputs). CPU twins of the same
// names in cpu::conv. With P = H_out·W_out, K = C_in·k·k, row r = n·P + oh·W_out + ow and
// column c = (ci·k + kh)·k + kw:
//
//   conv_im2col        cols[r, c] = x[n, ci, oh·s−p+kh, ow·s−p+kw]   (0 in the padding)
//                      x: [B, C_in, H, W] → cols: [B·P, K]
//   conv_col2im        dx[n, ci, ih, iw] = Σ_{kh,kw : ih = oh·s−p+kh, iw = ow·s−p+kw} dcols[r, c]
//                      (⊙ [a_prev > 0] if MASK) dcols: [B·P, K] → dx: [B, C_in, H, W];
//                      a gather over the taps, no atomics
//   conv_rows_to_nchw  z[n, co, q] = rows[n·P + q, co]   rows: [B·P, C_out] → z: [B, C_out, P]
//   conv_nchw_to_rows  rows[n·P + q, co] = z[n, co, q]   (its inverse)
//
// A convolution then runs as
//   forward           im2col; transpose W → Wᵀ [K, C_out]; rows = cols·Wᵀ + b (ReLU in the
//                     GEMM's epilogue); rows_to_nchw → z
//   backward_weights  nchw_to_rows(dz) → dZ rows; dW (+)= (dZ rows)ᵀ·cols (the forward's cols)
//   backward_input    dcols = (dZ rows)·W; col2im (the mask fused) → dx
// and the bias gradient stays conv2d_backward_bias on NCHW dz.
//
// Bindings: 0 params (uniform), 1 src (read), 2 a_prev (read; the mask of col2im, a dummy
// for the others), 3 dst (read_write). One invocation per output element (im2col: per row
// and input channel, writing its k·k contiguous columns), consecutive invocations writing
// consecutive elements; 1-D grid of LINEAR_WG-wide groups folded into y (grid prelude).
// col2im sums its taps in (kh, kw) increasing order, the others copy: the same bits every
// run.
//
// Measured (cnn model's second convolution, 32→64 on 14×14, batch 128: cols 25088×288,
// 7.2 M values; llvmpipe, Mesa 25.0.7, 2 cores shared, per-kernel GPU timestamps of
// `wgtrain bench --devices gpu --workloads cnn --steps 10`, one loaded run): conv_im2col
// 34–48 ms, conv_rows_to_nchw 17–28 ms, conv_nchw_to_rows 23 ms, conv_col2im 72–87 ms,
// against 160–340 ms for each GEMM. Each product's whole path, next to the implicit
// kernels: conv2d.wgsl's table. col2im runs input channels fastest (neighbouring
// invocations read neighbouring patch columns).

struct Params {
    batch: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, k: u32, stride: u32, pad: u32,
    h_out: u32, w_out: u32, flags: u32, w_off: u32,
    b_off: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const MASK: u32 = 2u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> a_prev: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(LINEAR_WG)
fn conv_im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let plane = p.h_out * p.w_out;
    if (i >= p.batch * plane * p.c_in) {
        return;
    }
    let r = i / p.c_in;
    let ci = i % p.c_in;
    let n = r / plane;
    let q = r % plane;
    let ih0 = i32((q / p.w_out) * p.stride) - i32(p.pad);
    let iw0 = i32((q % p.w_out) * p.stride) - i32(p.pad);
    let xc = (n * p.c_in + ci) * p.h * p.w;
    let k = i32(p.k);
    var at = (r * p.c_in + ci) * p.k * p.k;
    for (var kh = 0; kh < k; kh++) {
        let ih = ih0 + kh;
        let row_ok = ih >= 0 && ih < i32(p.h);
        let row = xc + u32(clamp(ih, 0, i32(p.h) - 1)) * p.w;
        for (var kw = 0; kw < k; kw++) {
            let iw = iw0 + kw;
            let ok = row_ok && iw >= 0 && iw < i32(p.w);
            dst[at] = select(0.0, src[row + u32(clamp(iw, 0, i32(p.w) - 1))], ok);
            at++;
        }
    }
}

@compute @workgroup_size(LINEAR_WG)
fn conv_col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    if (i >= p.batch * p.c_in * p.h * p.w) {
        return;
    }
    // Input channels fastest: neighbouring invocations read neighbouring columns of the
    // same patch rows (dx's writes scatter instead, a ninth as many as the reads).
    let ci = i % p.c_in;
    let iw = i32((i / p.c_in) % p.w);
    let ih = i32((i / (p.c_in * p.w)) % p.h);
    let n = i / (p.c_in * p.h * p.w);
    let at = ((n * p.c_in + ci) * p.h + u32(ih)) * p.w + u32(iw);
    let s = i32(p.stride);
    let kdim = p.c_in * p.k * p.k;
    let k = i32(p.k);
    var acc = 0.0;
    for (var kh = 0; kh < k; kh++) {
        let oh = ih + i32(p.pad) - kh;
        if (oh < 0 || oh % s != 0 || oh / s >= i32(p.h_out)) {
            continue;
        }
        let rh = (n * p.h_out + u32(oh / s)) * p.w_out;
        let c0 = (ci * p.k + u32(kh)) * p.k;
        for (var kw = 0; kw < k; kw++) {
            let ow = iw + i32(p.pad) - kw;
            if (ow < 0 || ow % s != 0 || ow / s >= i32(p.w_out)) {
                continue;
            }
            acc += src[(rh + u32(ow / s)) * kdim + c0 + u32(kw)];
        }
    }
    if ((p.flags & MASK) != 0u && !(a_prev[at] > 0.0)) {
        acc = 0.0;
    }
    dst[at] = acc;
}

@compute @workgroup_size(LINEAR_WG)
fn conv_rows_to_nchw(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let plane = p.h_out * p.w_out;
    if (i >= p.batch * p.c_out * plane) {
        return;
    }
    let q = i % plane;
    let co = (i / plane) % p.c_out;
    let n = i / (plane * p.c_out);
    dst[i] = src[(n * plane + q) * p.c_out + co];
}

@compute @workgroup_size(LINEAR_WG)
fn conv_nchw_to_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = linear_index(gid);
    let plane = p.h_out * p.w_out;
    if (i >= p.batch * p.c_out * plane) {
        return;
    }
    let co = i % p.c_out;
    let r = i / p.c_out;
    dst[i] = src[((r / plane) * p.c_out + co) * plane + r % plane];
}
