// gemm_tn_row  C = Aᵀ·B (gemm_tn's product: contract and Params in gemm_common.wgsl,
// prepended), the weight gradient dW = dZᵀ·X, for batches of at most 4 rows
// (`SMALL_BATCH`; K = B): A = dZ: [K, M], B = X: [K, N], C = dW: [M, N].
// There the product is almost all stores (M·N of them from K·(M+N) inputs), and a
// software adapter stores a vec4 per invocation for about the price of a scalar, so C is
// bound as vec4s here, with its own epilogue: flags ACCUMULATE or none (the weight
// gradient's; the host takes this kernel for no other).
// Each invocation computes 8 columns n0..n0+7 (lo, hi) of one row m of C: per element the
// fma chain of gemm_tn (0, then acc = fma(A(m, k), B(k, n), acc) for k = 0, 1, …, K−1),
// then C + acc when accumulating, so the same bits.
// Needs N, b_off, b_sk, c_off, c_sm ≡ 0 (mod 4); any M, a_off, a_sk. Workgroup TN_ROW_WG;
// dispatch (⌈N/(8·TN_ROW_WG)⌉, M, 1).
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

// The sums of row m, columns n0..n0+7 (lo, hi): C's before the epilogue.
struct Sums {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn sums(m: u32, n0: u32) -> Sums {
    let bl = (p.b_off + n0) / 4u;
    let bh = (p.b_off + min(n0 + 4u, p.n - 4u)) / 4u;
    let bsk = p.b_sk / 4u;
    var lo = vec4<f32>();
    var hi = vec4<f32>();
    var ak = p.a_off + m * p.a_sm;
    for (var k = 0u; k < p.k; k++) {
        let av = vec4<f32>(a[ak]);
        lo = fma(av, b[bl + k * bsk], lo);
        hi = fma(av, b[bh + k * bsk], hi);
        ak += p.a_sk;
    }
    return Sums(lo, hi);
}

// Finishes C[m, n..n+3] from its sums `acc` (+ C when accumulating) and stores them.
fn store4(m: u32, n: u32, acc: vec4<f32>) {
    let at = (p.c_off + m * p.c_sm + n) / 4u;
    var v = acc;
    if ((p.flags & ACCUMULATE) != 0u) {
        v = c[at] + v;
    }
    c[at] = v;
}

@compute @workgroup_size(TN_ROW_WG)
fn gemm_tn_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = wid.y;
    let n0 = gid.x * 8u;
    if (n0 >= p.n) {
        return;
    }
    let s = sums(m, n0);
    store4(m, n0, s.lo);
    if (n0 + 4u < p.n) {
        store4(m, n0 + 4u, s.hi);
    }
}

// W[m, n..n+3] ← SGD with the gradient g.
fn update4(m: u32, n: u32, g: vec4<f32>) {
    let at = (p.c_off + m * p.c_sm + n) / 4u;
    c[at] = sgd4(c[at], g, optim.lr, optim.weight_decay);
}

@compute @workgroup_size(TN_ROW_WG)
fn gemm_tn_row_sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let m = wid.y;
    let n0 = gid.x * 8u;
    if (n0 >= p.n || stats.step_bad != 0u) {
        return;
    }
    let s = sums(m, n0);
    update4(m, n0, s.lo);
    if (n0 + 4u < p.n) {
        update4(m, n0 + 4u, s.hi);
    }
    if (n0 == 0u && m % 4u == 0u) {
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
