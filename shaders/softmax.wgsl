// Row softmax, and softmax fused with cross-entropy and its gradient. One invocation
// per row (sample); z: [B, C] logits, row-major.
//
//   softmax:      p[n, c] = exp(z[n,c] − m_n) / Σ_j exp(z[n,j] − m_n),  m_n = max_j z[n,j]
//   softmax_xent: loss[n]    = logsumexp(z_n) − z[n, y_n]  = log Σ_j exp(z[n,j] − m_n) − (z[n,y_n] − m_n)
//                 correct[n] = [argmax_j z[n,j] = y_n]      (ties: the lowest index)
//                 dz[n, c]   = (p[n,c] − [c = y_n]) · scale (scale = 1/B: mean over the batch)
//
// Subtracting the row maximum keeps every exp() in (0, 1], so logits of any finite size
// give finite losses and gradients.
// The training step runs softmax_xent only; softmax is built on first use (by `wgtrain
// verify` and the parity tests).
// Bindings: 0 params, 1 z, 2 labels (read), 3 loss, 4 correct, 5 out (p or dz) (read_write).
// Workgroup 64; dispatch (⌈B/64⌉, 1, 1).

struct Params { batch: u32, classes: u32, scale: f32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> correct: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    if (n >= p.batch) {
        return;
    }
    let base = n * p.classes;
    var m = z[base];
    for (var c = 1u; c < p.classes; c++) {
        m = max(m, z[base + c]);
    }
    var s = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        let e = exp(z[base + c] - m);
        out[base + c] = e;
        s += e;
    }
    for (var c = 0u; c < p.classes; c++) {
        out[base + c] = out[base + c] / s;
    }
}

@compute @workgroup_size(64)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    if (n >= p.batch) {
        return;
    }
    let base = n * p.classes;
    let y = labels[n];
    var m = z[base];
    var arg = 0u;
    for (var c = 1u; c < p.classes; c++) {
        let v = z[base + c];
        if (v > m) {
            m = v;
            arg = c;
        }
    }
    var s = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        s += exp(z[base + c] - m);
    }
    let lse = log(s);
    loss[n] = lse - (z[base + y] - m);
    correct[n] = select(0u, 1u, arg == y);
    for (var c = 0u; c < p.classes; c++) {
        let prob = exp(z[base + c] - m - lse);
        let onehot = select(0.0, 1.0, c == y);
        out[base + c] = (prob - onehot) * p.scale;
    }
}
