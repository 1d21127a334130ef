// 2-D convolution, NCHW as PyTorch, square kernel k, stride s, zero padding p; the CPU
// twins of the same names are in cpu::conv (which states the math once more):
//
//   conv2d_forward           z[n,co,oh,ow] = b[co] + Σ_{ci,kh,kw} w[co,ci,kh,kw]·x[n,ci,oh·s−p+kh,ow·s−p+kw]   (max(·,0) if RELU)
//   conv2d_backward_input    dx[n,ci,ih,iw] = Σ_{co,kh,kw : ih = oh·s−p+kh, iw = ow·s−p+kw} dz[n,co,oh,ow]·w[co,ci,kh,kw]
//                            (the transposed convolution; ⊙ [a_prev > 0] if MASK)
//   conv2d_backward_weights  dw[co,ci,kh,kw] (+)= Σ_{n,oh,ow} dz[n,co,oh,ow]·x[n,ci,oh·s−p+kh,ow·s−p+kw]
//   conv2d_backward_bias     db[co] (+)= Σ_{n,oh,ow} dz[n,co,oh,ow]                  ((+) if ACCUMULATE)
//
// x: [B, C_in, H, W], w: [C_out, C_in, k, k], b: [C_out], z: [B, C_out, H_out, W_out],
// w (and dw) start at element w_off of their buffer, b (and db) at b_off: the training
// step binds the flat parameter (gradient) vector; the one-shot runners pass 0.
// H_out = ⌊(H + 2p − k)/s⌋ + 1 (likewise W_out); x outside 0..H × 0..W reads as zero.
// The host checks shapes (cpu::conv::Conv2dShape): k ≤ H + 2p, k ≤ W + 2p.
//
// Bindings, one layout for all four (unused ones bound to a dummy): 0 params (uniform),
// 1 src0, 2 src1, 3 src2 (read), 4 dst (read_write):
//   forward: x, w, b → z      backward_input: dz, w, a_prev → dx
//   backward_weights: dz, x → dw      backward_bias: dz → db
//
// Implicit GEMM, no workgroup memory and no barriers: on llvmpipe the CPU's caches do the
// tiling, and register blocking is what pays (see gemm_vec4.wgsl). Each invocation holds a
// block of outputs in vec4 accumulators (positions × channels, a channel per lane) and, for
// each term of its sum, loads one value per position and one per channel straight from
// storage and adds their outer product:
//   forward           8 output channels × 4 output positions of one output row (ow0..ow0+3):
//                     the row's padding test once per kernel row, 12 loads per 32 fma
//   backward_input    4 input channels × 4 consecutive input positions (n, ih, iw)
//   backward_weights  4 output channels × 4 consecutive weight columns (ci, kh, kw)
// backward_bias: one invocation per output channel. Ragged edges: loads clamp to the last
// valid channel / position / column and the stores skip what lies outside.
//
// Measured (cnn model's shapes, batch 128, k 3, pad 1; llvmpipe, Mesa 25.0.7, LLVM 15,
// 2 cores shared with other work, so best of 5 runs, and ±30% between sessions):
//                                   1→32 on 28×28 (57.8 MFLOP)   32→64 on 14×14 (925 MFLOP)
//   conv2d_forward (this, 4×8)        29 ms   2.0 GFLOP/s           256 ms   3.6 GFLOP/s
//   conv2d_forward (first 4×4 block)  109 ms  0.5 GFLOP/s           620 ms   1.5 GFLOP/s
//   im2col GEMM alone, gemm_vec4      42 ms   1.4 GFLOP/s           121 ms   7.7 GFLOP/s
//   conv2d_backward_input            126 ms   0.5 GFLOP/s           320 ms   2.9 GFLOP/s
//   conv2d_backward_weights           33 ms   1.7 GFLOP/s           354 ms   2.6 GFLOP/s
// "im2col GEMM alone" is gemm_nn on host-built patches, [B·P, C_in·k·k]·[C_in·k·k, C_out].
// The whole im2col path (conv_im2col.wgsl and gpu::conv_im2col: patches, the GEMMs, the
// layout changes, col2im), measured next to these kernels (median of 3 runs of
// `wgtrain bench --conv --steps 5`, each best of 5, on the loaded machine, load ≈ 4.5;
// the implicit kernels in the same runs in brackets):
//                                   1→32 on 28×28                32→64 on 14×14
//   forward (patches+GEMM+NCHW)       84 ms  [28]                  181 ms [330]  5.1 GFLOP/s
//   backward_weights (rows+GEMM)      70 ms  [26]                  124 ms [391]  7.5 GFLOP/s
//   backward_input (GEMM+col2im)      52 ms  [81]                  215 ms [482]  4.3 GFLOP/s
// (an earlier, less loaded session: implicit 276 / 304–326 / 191–328 ms against im2col
// 171–175 / 213–233 / 118–124 ms on the second shape). So the first layer (K = 9 starves
// the GEMM; its input gradient is never computed, it is node 0) stays on these kernels and
// the second runs all three products by im2col: the rule gpu::conv_im2col::IM2COL_MIN_K.
// An 8-position × 8-channel forward block measured the same as 4×8 within the noise.
// Command: wgtrain bench --conv.
//
// Grid: 1-D over the blocks, position (or column) blocks fastest, workgroup 64 (16 for the
// two reductions over the batch, so that a few hundred blocks still spread over several
// workgroups, i.e. CPU threads on llvmpipe); dispatch (min(⌈blocks/WG⌉, 65535), ⌈…/65535⌉, 1),
// flattened as i = x + y·65535·WG.
//
// Every sum runs in a fixed order and nothing is atomic, so the same inputs give the same
// bits: forward over (ci, kh, kw) increasing, then + b; backward_input over (kh, kw, co);
// backward_weights and backward_bias over (n, oh, ow); accumulation adds the old value last.

struct Params {
    batch: u32, c_in: u32, h: u32, w: u32,
    c_out: u32, k: u32, stride: u32, pad: u32,
    h_out: u32, w_out: u32, flags: u32, w_off: u32,
    b_off: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

const RELU: u32 = 1u;
const MASK: u32 = 2u;
const ACCUMULATE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src0: array<f32>;
@group(0) @binding(2) var<storage, read> src1: array<f32>;
@group(0) @binding(3) var<storage, read> src2: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

// x[base + ih·W + iw] of backward_weights (x is binding 2), zero in the padding.
fn x_at(base: u32, ih: i32, iw: i32) -> f32 {
    if (ih < 0 || iw < 0 || ih >= i32(p.h) || iw >= i32(p.w)) {
        return 0.0;
    }
    return src1[base + u32(ih) * p.w + u32(iw)];
}

// x[row + iw] of one input row, zero when iw lies in the padding (the load clamps).
fn x_row(row: u32, iw: i32) -> f32 {
    let ok = iw >= 0 && iw < i32(p.w);
    return select(0.0, src0[row + u32(clamp(iw, 0, i32(p.w) - 1))], ok);
}

// The 4×8 block of the forward: four positions of one output row × eight channels, each
// position's channels in a (lo, hi) pair of vec4.
struct Acc {
    l0: vec4<f32>, h0: vec4<f32>,
    l1: vec4<f32>, h1: vec4<f32>,
    l2: vec4<f32>, h2: vec4<f32>,
    l3: vec4<f32>, h3: vec4<f32>,
}

@compute @workgroup_size(64)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * (65535u * 64u);
    let wblocks = (p.w_out + 3u) / 4u;
    let pblocks = p.batch * p.h_out * wblocks;
    let cblocks = (p.c_out + 7u) / 8u;
    if (i >= pblocks * cblocks) {
        return;
    }
    let pb = i % pblocks;
    let co0 = (i / pblocks) * 8u;
    let ow0 = (pb % wblocks) * 4u;
    let n = (pb / wblocks) / p.h_out;
    let oh = (pb / wblocks) % p.h_out;
    let xn = n * p.c_in * p.h * p.w;
    let ih0 = i32(oh * p.stride) - i32(p.pad);
    let iw0 = i32(ow0 * p.stride) - i32(p.pad);
    let s = i32(p.stride);
    let wstride = p.c_in * p.k * p.k;
    let last = p.c_out - 1u;
    let w0 = p.w_off + co0 * wstride;
    let w1 = p.w_off + min(co0 + 1u, last) * wstride;
    let w2 = p.w_off + min(co0 + 2u, last) * wstride;
    let w3 = p.w_off + min(co0 + 3u, last) * wstride;
    let w4 = p.w_off + min(co0 + 4u, last) * wstride;
    let w5 = p.w_off + min(co0 + 5u, last) * wstride;
    let w6 = p.w_off + min(co0 + 6u, last) * wstride;
    let w7 = p.w_off + min(co0 + 7u, last) * wstride;
    let k = i32(p.k);
    var a: Acc;
    var t = 0u;  // (ci·k + kh)·k + kw, the weight's offset within its output channel
    for (var ci = 0u; ci < p.c_in; ci++) {
        let xc = xn + ci * p.h * p.w;
        for (var kh = 0; kh < k; kh++) {
            let ih = ih0 + kh;
            if (ih < 0 || ih >= i32(p.h)) {
                t += p.k;  // a padding row: every term is zero
                continue;
            }
            let row = xc + u32(ih) * p.w;
            for (var kw = 0; kw < k; kw++) {
                let iw = iw0 + kw;
                let x0 = vec4<f32>(x_row(row, iw));
                let x1 = vec4<f32>(x_row(row, iw + s));
                let x2 = vec4<f32>(x_row(row, iw + 2 * s));
                let x3 = vec4<f32>(x_row(row, iw + 3 * s));
                let lo = vec4<f32>(src1[w0 + t], src1[w1 + t], src1[w2 + t], src1[w3 + t]);
                let hi = vec4<f32>(src1[w4 + t], src1[w5 + t], src1[w6 + t], src1[w7 + t]);
                a.l0 = fma(x0, lo, a.l0);
                a.h0 = fma(x0, hi, a.h0);
                a.l1 = fma(x1, lo, a.l1);
                a.h1 = fma(x1, hi, a.h1);
                a.l2 = fma(x2, lo, a.l2);
                a.h2 = fma(x2, hi, a.h2);
                a.l3 = fma(x3, lo, a.l3);
                a.h3 = fma(x3, hi, a.h3);
                t++;
            }
        }
    }
    let plane = p.h_out * p.w_out;
    let zrow = n * p.c_out * plane + oh * p.w_out + ow0;
    for (var c = 0u; c < 8u; c++) {
        let co = co0 + c;
        if (co >= p.c_out) {
            break;
        }
        var v: vec4<f32>;
        if (c < 4u) {
            v = vec4<f32>(a.l0[c], a.l1[c], a.l2[c], a.l3[c]);
        } else {
            v = vec4<f32>(a.h0[c - 4u], a.h1[c - 4u], a.h2[c - 4u], a.h3[c - 4u]);
        }
        v += vec4<f32>(src2[p.b_off + co]);
        if ((p.flags & RELU) != 0u) {
            v = max(v, vec4<f32>(0.0));
        }
        let at = zrow + co * plane;
        for (var j = 0u; j < 4u; j++) {
            if (ow0 + j < p.w_out) {
                dst[at + j] = v[j];
            }
        }
    }
}

// One input position of backward_input: (n, ih, iw) and the dz index of (n, channel 0).
struct In {
    n: u32,
    ih: i32,
    iw: i32,
    xoff: u32,  // dx index of channel 0: n·C_in·H·W + ih·W + iw
}

fn in_pos(q: u32) -> In {
    let plane = p.h * p.w;
    var o: In;
    o.n = q / plane;
    let r = q % plane;
    o.ih = i32(r / p.w);
    o.iw = i32(r % p.w);
    o.xoff = o.n * p.c_in * plane + r;
    return o;
}

// The dz index of (n, channel 0, oh, ow) for the output that reads input (ih, iw) through
// tap (kh, kw), or -1 when there is none (ih + p − kh not a multiple of s, or outside).
fn dz_for(q: In, kh: i32, kw: i32) -> i32 {
    let s = i32(p.stride);
    let oh = q.ih + i32(p.pad) - kh;
    let ow = q.iw + i32(p.pad) - kw;
    if (oh < 0 || ow < 0 || oh % s != 0 || ow % s != 0) {
        return -1;
    }
    let oh_s = u32(oh / s);
    let ow_s = u32(ow / s);
    if (oh_s >= p.h_out || ow_s >= p.w_out) {
        return -1;
    }
    return i32(q.n * p.c_out * p.h_out * p.w_out + oh_s * p.w_out + ow_s);
}

fn dz_at(off: i32, co_off: u32) -> f32 {
    if (off < 0) {
        return 0.0;
    }
    return src0[u32(off) + co_off];
}

@compute @workgroup_size(64)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * (65535u * 64u);
    let positions = p.batch * p.h * p.w;
    let pblocks = (positions + 3u) / 4u;
    let cblocks = (p.c_in + 3u) / 4u;
    if (i >= pblocks * cblocks) {
        return;
    }
    let q0 = (i % pblocks) * 4u;
    let ci0 = (i / pblocks) * 4u;
    let last = positions - 1u;
    let x0 = in_pos(q0);
    let x1 = in_pos(min(q0 + 1u, last));
    let x2 = in_pos(min(q0 + 2u, last));
    let x3 = in_pos(min(q0 + 3u, last));
    let kk = p.k * p.k;
    let wci0 = ci0 * kk;
    let wci1 = min(ci0 + 1u, p.c_in - 1u) * kk;
    let wci2 = min(ci0 + 2u, p.c_in - 1u) * kk;
    let wci3 = min(ci0 + 3u, p.c_in - 1u) * kk;
    let wstride = p.c_in * kk;
    let plane = p.h_out * p.w_out;
    let k = i32(p.k);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var kh = 0; kh < k; kh++) {
        for (var kw = 0; kw < k; kw++) {
            let d0 = dz_for(x0, kh, kw);
            let d1 = dz_for(x1, kh, kw);
            let d2 = dz_for(x2, kh, kw);
            let d3 = dz_for(x3, kh, kw);
            if (d0 < 0 && d1 < 0 && d2 < 0 && d3 < 0) {
                continue;
            }
            let tap = u32(kh * k + kw);
            for (var co = 0u; co < p.c_out; co++) {
                let wo = p.w_off + co * wstride + tap;
                let wv = vec4<f32>(src1[wo + wci0], src1[wo + wci1], src1[wo + wci2], src1[wo + wci3]);
                let zo = co * plane;
                a0 = fma(vec4<f32>(dz_at(d0, zo)), wv, a0);
                a1 = fma(vec4<f32>(dz_at(d1, zo)), wv, a1);
                a2 = fma(vec4<f32>(dz_at(d2, zo)), wv, a2);
                a3 = fma(vec4<f32>(dz_at(d3, zo)), wv, a3);
            }
        }
    }
    let xplane = p.h * p.w;
    let masked = (p.flags & MASK) != 0u;
    for (var c = 0u; c < 4u; c++) {
        let ci = ci0 + c;
        if (ci >= p.c_in) {
            break;
        }
        let v = vec4<f32>(a0[c], a1[c], a2[c], a3[c]);
        for (var j = 0u; j < 4u; j++) {
            if (q0 + j > last) {
                break;
            }
            var at = x0.xoff;
            switch (j) {
                case 1u: { at = x1.xoff; }
                case 2u: { at = x2.xoff; }
                case 3u: { at = x3.xoff; }
                default: {}
            }
            at += ci * xplane;
            var g = v[j];
            if (masked && !(src2[at] > 0.0)) {
                g = 0.0;
            }
            dst[at] = g;
        }
    }
}

// One weight column of backward_weights: (ci, kh, kw) as the x offset of channel ci and
// the tap.
struct Col {
    xc: u32,
    kh: i32,
    kw: i32,
}

fn col(r: u32) -> Col {
    let kk = p.k * p.k;
    var c: Col;
    c.xc = (r / kk) * p.h * p.w;
    c.kh = i32((r % kk) / p.k);
    c.kw = i32(r % p.k);
    return c;
}

@compute @workgroup_size(16)
fn conv2d_backward_weights(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * (65535u * 16u);
    let cols = p.c_in * p.k * p.k;
    let rblocks = (cols + 3u) / 4u;
    let cblocks = (p.c_out + 3u) / 4u;
    if (i >= rblocks * cblocks) {
        return;
    }
    let r0 = (i % rblocks) * 4u;
    let co0 = (i / rblocks) * 4u;
    let c0 = col(r0);
    let c1 = col(min(r0 + 1u, cols - 1u));
    let c2 = col(min(r0 + 2u, cols - 1u));
    let c3 = col(min(r0 + 3u, cols - 1u));
    let plane = p.h_out * p.w_out;
    let z0 = co0 * plane;
    let z1 = min(co0 + 1u, p.c_out - 1u) * plane;
    let z2 = min(co0 + 2u, p.c_out - 1u) * plane;
    let z3 = min(co0 + 3u, p.c_out - 1u) * plane;
    let s = i32(p.stride);
    let pad = i32(p.pad);
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        let zn = n * p.c_out * plane;
        let xn = n * p.c_in * p.h * p.w;
        for (var oh = 0u; oh < p.h_out; oh++) {
            let ih = i32(oh) * s - pad;
            for (var ow = 0u; ow < p.w_out; ow++) {
                let iw = i32(ow) * s - pad;
                let zo = zn + oh * p.w_out + ow;
                let g = vec4<f32>(src0[zo + z0], src0[zo + z1], src0[zo + z2], src0[zo + z3]);
                a0 = fma(vec4<f32>(x_at(xn + c0.xc, ih + c0.kh, iw + c0.kw)), g, a0);
                a1 = fma(vec4<f32>(x_at(xn + c1.xc, ih + c1.kh, iw + c1.kw)), g, a1);
                a2 = fma(vec4<f32>(x_at(xn + c2.xc, ih + c2.kh, iw + c2.kw)), g, a2);
                a3 = fma(vec4<f32>(x_at(xn + c3.xc, ih + c3.kh, iw + c3.kw)), g, a3);
            }
        }
    }
    let acc = (p.flags & ACCUMULATE) != 0u;
    for (var c = 0u; c < 4u; c++) {
        let co = co0 + c;
        if (co >= p.c_out) {
            break;
        }
        let v = vec4<f32>(a0[c], a1[c], a2[c], a3[c]);
        for (var j = 0u; j < 4u; j++) {
            if (r0 + j >= cols) {
                break;
            }
            let at = p.w_off + co * cols + r0 + j;
            var g = v[j];
            if (acc) {
                g = dst[at] + g;
            }
            dst[at] = g;
        }
    }
}

@compute @workgroup_size(16)
fn conv2d_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let co = gid.x + gid.y * (65535u * 16u);
    if (co >= p.c_out) {
        return;
    }
    let plane = p.h_out * p.w_out;
    var s = 0.0;
    for (var n = 0u; n < p.batch; n++) {
        let base = (n * p.c_out + co) * plane;
        for (var j = 0u; j < plane; j++) {
            s += src0[base + j];
        }
    }
    if ((p.flags & ACCUMULATE) != 0u) {
        s = dst[p.b_off + co] + s;
    }
    dst[p.b_off + co] = s;
}
