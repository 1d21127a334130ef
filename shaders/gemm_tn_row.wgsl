// gemm_tn_row  C = Aᵀ·B (gemm_tn's product: contract and Params in gemm_common.wgsl,
// prepended) for K ≤ 4: the weight gradient dW = dZᵀ·X of batches of at most 4 rows
// (`SMALL_BATCH`; K = B): A = dZ: [K, M], B = X: [K, N], C = dW: [M, N]; or the input
// gradient dX = (dZᵀ)ᵀ·W of a layer of at most 4 outputs without a mask (K = OUT, A = dZᵀ
// from `transpose`). There the product is almost all stores (M·N of them from K·(M+N)
// inputs), and a software adapter stores a vec4 per invocation for about the price of a
// scalar, so C is bound as vec4s here, with its own epilogue: flags ACCUMULATE or none
// (`Gemm::tn_row`; the host takes this kernel for no other).
// Each invocation computes a segment of TN_ROW_SEG vec4s (columns 4j..4j+3 for j in
// c0..c1−1) of one row m of C, one vec4 after another: per element the fma chain of
// gemm_tn (0, then acc = fma(A(m, k), B(k, n), acc) for k = 0, 1, …, K−1), then C + acc
// when accumulating, so the same bits. A software adapter runs each workgroup as
// SIMD lanes with a cost per invocation, so long segments (few invocations) beat one
// vec4 pair per invocation (llvmpipe, 256×784 at B = 1: 0.33–0.38 against 0.48–0.54 ms).
// Needs N, b_off, b_sk, c_off, c_sm ≡ 0 (mod 4) and K ≤ 4; any M, a_off, a_sk.
// Workgroup TN_ROW_WG; a 1-D grid of M·⌈N/(4·TN_ROW_SEG)⌉ invocations folded into y past
// 65535 groups (`linear_groups`).
//
// gemm_tn_row_sgd: the same sums (flags none), not stored: each is the gradient of the
// weight at C[m, n], which it updates in place by SGD, W ← sgd4(W, dW) (optim_common.wgsl,
// prepended with stats_common.wgsl), unless stats.step_bad: C is W itself, in the
// parameter buffer. The bias b: [M] at bias_off of the same buffer (≡ 0 mod 4) goes with
// it, b ← sgd4(b, db), db[m] = Σ_k A(m, k) summed in increasing k from 0 as
// fc_backward_bias does, by the first invocation of every fourth row for rows m..m+3 (a
// whole vec4, rewriting past row M−1 the values it read: nothing else in the dispatch
// writes them). A pure-SGD step of a small batch with the update fused into the backward
// pass (`GpuNet`'s fused SGD steps, CPU twin `fc_sgd_step`): the gradients' stores and the
// optimizer's pass go, and the bits stay those of gemm_tn_row and fc_backward_bias
// followed by optimizer_update_sgd. It must run after every kernel of the step that reads
// W (the input gradient). Bindings 3 optim (uniform `OptimParams`), 4 stats (read) in
// place of bias and mask.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> optim: OptimParams;
@group(0) @binding(4) var<storage, read> stats: Stats;
@group(0) @binding(5) var<storage, read_write> c: array<vec4<f32>>;

const TN_ROW_WG: u32 = 64u;
const TN_ROW_SEG: u32 = 32u;

// Invocation i's row m and vec4 columns c0..c1−1 (empty past the last row).
struct Segment {
    m: u32,
    c0: u32,
    c1: u32,
}

fn segment(gid: vec3<u32>, groups: vec3<u32>) -> Segment {
    let i = gid.x + gid.y * groups.x * TN_ROW_WG;
    let n4 = p.n / 4u;
    let per_row = (n4 + TN_ROW_SEG - 1u) / TN_ROW_SEG;
    let m = i / per_row;
    let c0 = (i % per_row) * TN_ROW_SEG;
    return Segment(m, c0, select(c0, min(c0 + TN_ROW_SEG, n4), m < p.m));
}

// A(m, k) for k = 0, 1, …, K−1 (K ≤ 4; the rest 0).
fn a_row(m: u32) -> vec4<f32> {
    var r = vec4<f32>();
    var ak = p.a_off + m * p.a_sm;
    for (var k = 0u; k < p.k; k++) {
        r[k] = a[ak];
        ak += p.a_sk;
    }
    return r;
}

// The sums of row m (A's values `ar`) at columns 4j..4j+3: C's before the epilogue.
fn sums(ar: vec4<f32>, j: u32) -> vec4<f32> {
    let bsk = p.b_sk / 4u;
    var bk = p.b_off / 4u + j;
    var acc = vec4<f32>();
    for (var k = 0u; k < p.k; k++) {
        acc = fma(vec4<f32>(ar[k]), b[bk], acc);
        bk += bsk;
    }
    return acc;
}

@compute @workgroup_size(TN_ROW_WG)
fn gemm_tn_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let s = segment(gid, groups);
    if (s.c0 >= s.c1) {
        return;
    }
    let ar = a_row(s.m);
    let row = (p.c_off + s.m * p.c_sm) / 4u;
    for (var j = s.c0; j < s.c1; j++) {
        var v = sums(ar, j);
        if ((p.flags & ACCUMULATE) != 0u) {
            v = c[row + j] + v;
        }
        c[row + j] = v;
    }
}

@compute @workgroup_size(TN_ROW_WG)
fn gemm_tn_row_sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let s = segment(gid, groups);
    if (s.c0 >= s.c1 || stats.step_bad != 0u) {
        return;
    }
    let m = s.m;
    let ar = a_row(m);
    let row = (p.c_off + m * p.c_sm) / 4u;
    for (var j = s.c0; j < s.c1; j++) {
        c[row + j] = sgd4(c[row + j], sums(ar, j), optim.lr, optim.weight_decay);
    }
    if (s.c0 == 0u && m % 4u == 0u) {
        let last = p.m - 1u;
        var db = vec4<f32>();
        for (var k = 0u; k < p.k; k++) {
            let ak = p.a_off + k * p.a_sk;
            let r = vec4<u32>(m, min(m + 1u, last), min(m + 2u, last), min(m + 3u, last));
            db += vec4<f32>(a[ak + r.x * p.a_sm], a[ak + r.y * p.a_sm], a[ak + r.z * p.a_sm], a[ak + r.w * p.a_sm]);
        }
        let at = (p.bias_off + m) / 4u;
        let b = c[at];
        c[at] = select(b, sgd4(b, db, optim.lr, optim.weight_decay), vec4<u32>(m, m + 1u, m + 2u, m + 3u) <= vec4<u32>(last));
    }
}
