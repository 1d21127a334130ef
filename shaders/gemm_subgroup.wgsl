// gemm_subgroup  C = A·B with A shared through the subgroup (appended to gemm_vec4.wgsl,
// whose scalar_a it uses, and so after gemm_block.wgsl's Block, outer and store, in a
// module built only where the adapter has subgroups). Any A strides; B's rows are vec4s (b_sn = 1; N, b_sk, b_off ≡ 0
// (mod 4)), so it computes gemm_nn's and gemm_tn's products.
//
// Each invocation holds an 8×8 block of C as gemm_nn does, but the 8 rows m0..m0+7 are
// the workgroup's (workgroup_id.y), shared by all its invocations, which lie along n.
// Instead of every invocation loading A(m0 + r, k) for every k, the subgroup loads A in
// chunks of S = subgroup_size values of k: lane i loads A(m0 + r, k0 + i) for r = 0..7,
// and the k loop takes A(m0 + r, k) from lane k − k0 by subgroupShuffle — one load of A
// per row per S values of k. The sums are gemm_nn's fma chains (0, then k = 0, 1, …,
// K−1), so the same bits. Shuffles need the whole subgroup, so no invocation leaves the
// loops early: columns past N read B's last vec4 and are not stored (store_row checks
// every element); rows past M read A's last row. Needs subgroup_size ≤ SG_WG. Workgroup
// SG_WG × 1; one group covers 8 rows × (8·SG_WG) columns; dispatch (⌈N/(8·SG_WG)⌉,
// ⌈M/8⌉, 1).

const SG_WG: u32 = 64u;

@compute @workgroup_size(SG_WG)
fn gemm_subgroup(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_size) lanes: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let m0 = wid.y * 8u;
    let n0 = gid.x * 8u;
    let last_m = p.m - 1u;
    let last_k = p.k - 1u;
    // A(m0 + r, ·) starts at row[r].
    var row: array<u32, 8>;
    for (var r = 0u; r < 8u; r++) {
        row[r] = p.a_off + min(m0 + r, last_m) * p.a_sm;
    }
    let bl = (p.b_off + min(n0, p.n - 4u)) / 4u;
    let bh = (p.b_off + min(n0 + 4u, p.n - 4u)) / 4u;
    let bsk = p.b_sk / 4u;
    var x: Block;
    for (var k0 = 0u; k0 < p.k; k0 += lanes) {
        let mine = min(k0 + lane, last_k) * p.a_sk;
        var av: array<f32, 8>;
        for (var r = 0u; r < 8u; r++) {
            av[r] = scalar_a(row[r] + mine);
        }
        let count = min(lanes, p.k - k0);
        for (var i = 0u; i < count; i++) {
            let k = (k0 + i) * bsk;
            x = outer(
                x,
                subgroupShuffle(av[0], i),
                subgroupShuffle(av[1], i),
                subgroupShuffle(av[2], i),
                subgroupShuffle(av[3], i),
                subgroupShuffle(av[4], i),
                subgroupShuffle(av[5], i),
                subgroupShuffle(av[6], i),
                subgroupShuffle(av[7], i),
                vec4<f32>(b[bl + k]),
                vec4<f32>(b[bh + k]),
            );
        }
    }
    store(m0, n0, x);
}
