// Transposes one weight matrix, so the forward product reads Wᵀ row-contiguously:
//   dst[dst_off + i·rows + o] = src[src_off + o·cols + i],   W: [rows = OUT, cols = IN]
// Run at the start of every recorded step (after the previous step's update).
// Bindings: 0 params, 1 src (read), 2 dst (read_write). One invocation per element,
// consecutive invocations writing consecutive elements; workgroup 64; dispatch
// (⌈rows/64⌉, cols, 1).

struct Params { rows: u32, cols: u32, src_off: u32, dst_off: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(64)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>) {
    let o = gid.x;
    let i = gid.y;
    if (o >= p.rows || i >= p.cols) {
        return;
    }
    dst[p.dst_off + i * p.rows + o] = src[p.src_off + o * p.cols + i];
}
