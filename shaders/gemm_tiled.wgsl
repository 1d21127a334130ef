// gemm_tiled: the generic product (contract and Params in gemm_common.wgsl, the epilogue
// in gemm_epilogue.wgsl, both prepended; any strides and shapes) tiled through workgroup
// memory, the way fast GEMMs run on hardware GPUs. A workgroup of TW×TW invocations owns
// a TILE×TILE tile of C (TILE = 4·TW), each invocation a 4×4 block of it in registers.
// For each panel of BK values along k the workgroup stages A's TILE×BK and B's BK×TILE
// panels in workgroup memory — every invocation loads 4 values of each, neighbouring
// invocations along the operand's contiguous dimension (k for A when a_sk = 1, n for B
// when b_sn = 1), so a hardware GPU coalesces the loads — waits at a barrier, and adds the
// panel's outer products into its block.
//
// Per element of C the sum is gemm's fma chain — 0, then acc = fma(A(m, k), B(k, n), acc)
// for k = 0, 1, …, K−1 — and the same epilogue, so the same bits as `gemm` and the vec4
// kernels on the same adapter. Ragged edges: loads clamp to the last row, column and k (in
// bounds); the last panel adds only its K mod BK terms; stores are guarded. On llvmpipe
// the barriers and workgroup memory cost more than the CPU's caches give back (`wgtrain
// bench --gemm`), so the measured choice (`gpu::choice`) keeps the register-blocked
// kernels there. Workgroup TW×TW; dispatch (⌈N/TILE⌉, ⌈M/TILE⌉, 1).

@group(0) @binding(1) var<storage, read> a: array<AT>;
@group(0) @binding(2) var<storage, read> b: array<BT>;

const TW: u32 = 16u;
const TILE: u32 = 64u;
const BK: u32 = 16u;
const THREADS: u32 = 256u;

// The staged panels: sa[k][m] = A(tile row m, panel k), sb[k][n] = B(panel k, tile col n).
var<workgroup> sa: array<array<f32, TILE>, BK>;
var<workgroup> sb: array<array<f32, TILE>, BK>;

@compute @workgroup_size(TW, TW)
fn gemm_tiled(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tm = wid.y * TILE;
    let tn = wid.x * TILE;
    let t = lid.y * TW + lid.x;
    let a_k_fastest = p.a_sk == 1u;
    let b_n_fastest = p.b_sn == 1u;
    var acc = array<vec4<f32>, 4>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + r * THREADS;
            var kk = e / TILE;
            var mm = e % TILE;
            if (a_k_fastest) {
                kk = e % BK;
                mm = e / BK;
            }
            let ka = min(k0 + kk, p.k - 1u);
            let m = min(tm + mm, p.m - 1u);
            sa[kk][mm] = f32(a[p.a_off + m * p.a_sm + ka * p.a_sk]);
            var kb = e / TILE;
            var nn = e % TILE;
            if (!b_n_fastest) {
                kb = e % BK;
                nn = e / BK;
            }
            let kbb = min(k0 + kb, p.k - 1u);
            let n = min(tn + nn, p.n - 1u);
            sb[kb][nn] = f32(b[p.b_off + kbb * p.b_sk + n * p.b_sn]);
        }
        workgroupBarrier();
        let terms = min(BK, p.k - k0);
        for (var kk = 0u; kk < terms; kk++) {
            let c0 = lid.x * 4u;
            let bv = vec4<f32>(sb[kk][c0], sb[kk][c0 + 1u], sb[kk][c0 + 2u], sb[kk][c0 + 3u]);
            for (var i = 0u; i < 4u; i++) {
                acc[i] = fma(vec4<f32>(sa[kk][lid.y * 4u + i]), bv, acc[i]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let m = tm + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let n = tn + lid.x * 4u + j;
            if (m < p.m && n < p.n) {
                epilogue(m, n, acc[i][j]);
            }
        }
    }
}
