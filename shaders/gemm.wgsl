// The generic matrix product (contract, Params and epilogue in gemm_common.wgsl, which
// is prepended): any strides and shapes. Workgroup WG×WG invocations, each holding a 4×4
// block of C in registers, so one workgroup covers a (4·WG)×(4·WG) tile; dispatch
// (⌈N/(4·WG)⌉, ⌈M/(4·WG)⌉, 1). Ragged edges: loads clamp to the last row/column (always
// in bounds) and stores are guarded. The sum over k runs in increasing k with one fma
// per term: a fixed order, so the same inputs give the same bits on the same adapter.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

@compute @workgroup_size(WG, WG)
fn gemm(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    if (m0 >= p.m || n0 >= p.n) {
        return;
    }
    let a0 = p.a_off + m0 * p.a_sm;
    let a1 = p.a_off + min(m0 + 1u, p.m - 1u) * p.a_sm;
    let a2 = p.a_off + min(m0 + 2u, p.m - 1u) * p.a_sm;
    let a3 = p.a_off + min(m0 + 3u, p.m - 1u) * p.a_sm;
    let b0 = p.b_off + n0 * p.b_sn;
    let b1 = p.b_off + min(n0 + 1u, p.n - 1u) * p.b_sn;
    let b2 = p.b_off + min(n0 + 2u, p.n - 1u) * p.b_sn;
    let b3 = p.b_off + min(n0 + 3u, p.n - 1u) * p.b_sn;

    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var ak = 0u;
    var bk = 0u;
    for (var kk = 0u; kk < p.k; kk++) {
        let bv = vec4<f32>(b[b0 + bk], b[b1 + bk], b[b2 + bk], b[b3 + bk]);
        c0 = fma(vec4<f32>(a[a0 + ak]), bv, c0);
        c1 = fma(vec4<f32>(a[a1 + ak]), bv, c1);
        c2 = fma(vec4<f32>(a[a2 + ak]), bv, c2);
        c3 = fma(vec4<f32>(a[a3 + ak]), bv, c3);
        ak += p.a_sk;
        bk += p.b_sk;
    }

    let rows = array<vec4<f32>, 4>(c0, c1, c2, c3);
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (m0 + i < p.m && n0 + j < p.n) {
                epilogue(m0 + i, n0 + j, rows[i][j]);
            }
        }
    }
}
