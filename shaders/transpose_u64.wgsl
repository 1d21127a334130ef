// transpose_u64  transpose.wgsl's copy of an f32 matrix, through 64-bit words:
//   dst[dst_off + i·rows + o] = src[src_off + o·cols + i],   src: [rows, cols], dst: [cols, rows]
// for rows, cols, src_off and dst_off multiples of 8 (others take `transpose`). Each
// invocation moves an 8×8 block — rows o0..o0+7, columns i0..i0+7 of src — with 8 vec4<u64>
// loads (one per row of the block, 8 f32 values each, the lower-indexed value in the low
// word) and 8 vec4<u64> stores (one per row of the block's transpose). llvmpipe pays each
// load and store per lane and per component, whatever the component's width, so this
// moves two values per component where `transpose` moves one. The words are rearranged
// with shifts and masks: a copy of the bits, so the same result as `transpose`.
// Needs SHADER_INT64. Bindings: 0 params, 1 src (read), 2 dst (read_write). Workgroup
// 8×8; dispatch (⌈cols/64⌉, ⌈rows/64⌉, 1).

struct Params { rows: u32, cols: u32, src_off: u32, dst_off: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u64>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u64>>;

const LOW: u64 = 0xfffffffflu;

// a and b: word q of src rows o0 + 2j and o0 + 2j + 1, holding src columns i0 + 2q (low
// halves) and i0 + 2q + 1 (high halves). The word of dst row i0 + 2q at dst columns
// o0 + 2j, o0 + 2j + 1 is their low halves; that of dst row i0 + 2q + 1 their high halves.
fn even_column(a: u64, b: u64) -> u64 {
    return (a & LOW) | (b << 32u);
}

fn odd_column(a: u64, b: u64) -> u64 {
    return (a >> 32u) | (b & ~LOW);
}

// Stores src columns i and i + 1 of the block as dst rows i and i + 1 (dst columns
// o0..o0+7), from word w_r of each src row o0 + r, which holds columns i (low) and i + 1
// (high).
fn store_columns(i: u32, o0: u32, w0: u64, w1: u64, w2: u64, w3: u64, w4: u64, w5: u64, w6: u64, w7: u64) {
    let even = vec4<u64>(even_column(w0, w1), even_column(w2, w3), even_column(w4, w5), even_column(w6, w7));
    let odd = vec4<u64>(odd_column(w0, w1), odd_column(w2, w3), odd_column(w4, w5), odd_column(w6, w7));
    dst[(p.dst_off + i * p.rows + o0) / 8u] = even;
    dst[(p.dst_off + (i + 1u) * p.rows + o0) / 8u] = odd;
}

@compute @workgroup_size(8, 8)
fn transpose_u64(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i0 = gid.x * 8u;
    let o0 = gid.y * 8u;
    if (i0 >= p.cols || o0 >= p.rows) {
        return;
    }
    let at = (p.src_off + o0 * p.cols + i0) / 8u;
    let row = p.cols / 8u;
    let s0 = src[at];
    let s1 = src[at + row];
    let s2 = src[at + 2u * row];
    let s3 = src[at + 3u * row];
    let s4 = src[at + 4u * row];
    let s5 = src[at + 5u * row];
    let s6 = src[at + 6u * row];
    let s7 = src[at + 7u * row];
    store_columns(i0, o0, s0.x, s1.x, s2.x, s3.x, s4.x, s5.x, s6.x, s7.x);
    store_columns(i0 + 2u, o0, s0.y, s1.y, s2.y, s3.y, s4.y, s5.y, s6.y, s7.y);
    store_columns(i0 + 4u, o0, s0.z, s1.z, s2.z, s3.z, s4.z, s5.z, s6.z, s7.z);
    store_columns(i0 + 6u, o0, s0.w, s1.w, s2.w, s3.w, s4.w, s5.w, s6.w, s7.w);
}
