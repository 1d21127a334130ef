// Transposes a matrix: a weight matrix, so the forward product reads Wᵀ row-contiguously,
// or (f32, where a product `Gemm::transposes_a`) a Linear node's input X or its output's
// gradient dZ, so the product reads that operand as gemm_tn's vec4s of rows:
//   dst[dst_off + i·rows + o] = to_dt(src[src_off + o·cols + i]),   W: [rows = OUT, cols = IN]
// DT, the destination's element type, and to_dt are put before this file
// (`gpu::kernels`): f32 and the identity, or, for mixed precision's Wᵀ, f16 and
// f16_common.wgsl's to_f16 (cast_f16.wgsl's conversion).
// f32 matrices of whole 8×8 blocks (rows, cols and both offsets multiples of 8) take
// transpose_u64.wgsl instead where the device has SHADER_INT64 (`TransposeParams::kernel`).
// W's: at the start of every recorded step of more than 4 rows (`SMALL_BATCH`; smaller
// ones read W itself), after the previous step's update; X's and dZ's: before their product.
// Bindings: 0 params, 1 src (read), 2 dst (read_write). One invocation per row o and
// COLS consecutive columns i (reading them contiguously), consecutive invocations writing
// consecutive elements; workgroup 64; dispatch (⌈rows/64⌉, ⌈cols/COLS⌉, 1) — COLS
// columns per invocation so a software adapter runs a sixteenth of the workgroups, each
// of which it pays for (a copy: any grid gives the same bits).

struct Params { rows: u32, cols: u32, src_off: u32, dst_off: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<DT>;

const COLS: u32 = 16u;

@compute @workgroup_size(64)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let i0 = gid.y * COLS;
    if (o >= p.rows) {
        return;
    }
    let end = min(i0 + COLS, p.cols);
    for (var i = i0; i < end; i++) {
        dst[p.dst_off + i * p.rows + o] = to_dt(src[p.src_off + o * p.cols + i]);
    }
}
