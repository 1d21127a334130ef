//! Shared by the test binaries: one GPU per binary, or a loud skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wgtrain::data::{load_idx_dir, Split};
use wgtrain::gpu::ops as gops;
use wgtrain::gpu::{AdapterChoice, Gpu};

/// The vendored Fashion-MNIST's folder.
pub fn fashion_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

/// The first `train` training and `test` test images of the vendored Fashion-MNIST.
pub fn fashion_mnist(train: usize, test: usize) -> Split {
    let mut s = load_idx_dir(&fashion_mnist_dir(), None).unwrap();
    s.train = s.train.head(train);
    s.test = s.test.head(test);
    s
}

/// The adapter for GPU tests, opened once per test binary, its matrix products on the
/// fixed rule's kernels and no kernel cache (tests/kernel_choice.rs measures, in its own
/// cache folder). With `WGTRAIN_REQUIRE_GPU=1` (CI) a missing adapter fails the test;
/// otherwise the test says that it skipped.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    let gpu = GPU
        .get_or_init(|| match Gpu::new(&AdapterChoice::any()) {
            Ok(mut g) => {
                g.choices.configure(wgtrain::gpu::choice::KernelPolicy::Fixed, None);
                eprintln!("GPU tests run on {}", g.describe());
                Some(g)
            }
            Err(e) => {
                eprintln!("no GPU adapter: {e}");
                None
            }
        })
        .as_ref();
    if gpu.is_none() {
        if std::env::var("WGTRAIN_REQUIRE_GPU").as_deref() == Ok("1") {
            panic!("WGTRAIN_REQUIRE_GPU=1 but no GPU adapter could be opened");
        }
        eprintln!("SKIPPED: this GPU test found no adapter (set WGTRAIN_REQUIRE_GPU=1 to fail instead)");
    }
    gpu
}

/// Asserts every outcome passed, printing the failures' worst elements.
pub fn assert_pass(outcomes: &[wgtrain::verify::Outcome]) {
    let failed: Vec<String> = outcomes.iter().filter(|o| !o.pass).map(|o| o.report()).collect();
    assert!(failed.is_empty(), "{} of {} comparisons failed:\n{}", failed.len(), outcomes.len(), failed.join(""));
}

/// An IDX file's bytes: magic (element type `ty`, `dims.len()` dimensions), the big-endian
/// dimensions, then `data`.
pub fn idx_bytes(ty: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        v.extend(d.to_be_bytes());
    }
    v.extend(data);
    v
}

/// `bytes` gzip'd.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The GPU for mixed-precision tests: [`gpu`] where it has `SHADER_F16` (llvmpipe, so CI,
/// does; elsewhere the test says that it skipped).
pub fn f16_gpu() -> Option<&'static Gpu> {
    let gpu = gpu()?;
    if gpu.features.contains(wgpu::Features::SHADER_F16) {
        return Some(gpu);
    }
    assert!(!gpu.info.name.contains("llvmpipe"), "llvmpipe has SHADER_F16");
    eprintln!("SKIPPED: {} has no SHADER_F16 (--precision mixed)", gpu.describe());
    None
}

/// Asserts `got` holds `want`'s bits, value for value.
pub fn assert_same_bits(want: &[f32], got: &[f32], what: &str) {
    let differ: Vec<usize> = (0..want.len()).filter(|&i| want[i].to_bits() != got[i].to_bits()).collect();
    assert!(
        differ.is_empty(),
        "{what}: {} of {} values differ, first at {:?}",
        differ.len(),
        want.len(),
        differ.first()
    );
}

/// The gradient of a mean-loss step of an MLP `inp → hidden (ReLU) → classes` from the
/// one-shot GPU ops, each product on the `gemm_nn`/`gemm_tn` form its runner takes — as
/// `GpuNet` records a step. With `f16` (mixed precision): `X`, `W1`, `W2` and the hidden
/// activation cast to f16 (`cast_f16`), each product computed in f32 on the cast values
/// (the f16 product kernels give those bits), everything else in f32.
pub fn composed_gradient(
    gpu: &wgtrain::gpu::Gpu,
    model: &wgtrain::model::Model,
    params: &[f32],
    x: &[f32],
    y: &[u32],
    (inp, hidden, classes): (usize, usize, usize),
    f16: bool,
) -> Vec<f32> {
    let cast = |v: &[f32]| if f16 { gops::cast_f16(gpu, v).unwrap() } else { v.to_vec() };
    let batch = y.len();
    let [l1, l2] = [0, 1].map(|i| model.nodes()[i]);
    let w1 = cast(&params[l1.w_off..l1.w_off + hidden * inp]);
    let w2 = cast(&params[l2.w_off..l2.w_off + classes * hidden]);
    let (b1, b2) = (&params[l1.b_off..l1.b_off + hidden], &params[l2.b_off..l2.b_off + classes]);
    let x16 = cast(x);
    let a1 = gops::fc_forward(gpu, &x16, &w1, b1, batch, inp, hidden, true).unwrap();
    let a1_16 = cast(&a1);
    let z2 = gops::fc_forward(gpu, &a1_16, &w2, b2, batch, hidden, classes, false).unwrap();
    let (_, _, dz2) = gops::softmax_xent(gpu, &z2, y, 1.0 / batch as f32, batch, classes).unwrap();
    let mut grad = vec![0.0; model.param_count()];
    let dw2 = gops::fc_backward_weights(gpu, &dz2, &a1_16, &vec![0.0; classes * hidden], batch, hidden, classes, false);
    grad[l2.w_off..l2.w_off + classes * hidden].copy_from_slice(&dw2.unwrap());
    let db2 = gops::fc_backward_bias(gpu, &dz2, &vec![0.0; classes], batch, classes, false).unwrap();
    grad[l2.b_off..l2.b_off + classes].copy_from_slice(&db2);
    let dz1 = gops::fc_backward_input(gpu, &dz2, &w2, Some(&a1), batch, hidden, classes).unwrap();
    let dw1 = gops::fc_backward_weights(gpu, &dz1, &x16, &vec![0.0; hidden * inp], batch, inp, hidden, false);
    grad[l1.w_off..l1.w_off + hidden * inp].copy_from_slice(&dw1.unwrap());
    let db1 = gops::fc_backward_bias(gpu, &dz1, &vec![0.0; hidden], batch, hidden, false).unwrap();
    grad[l1.b_off..l1.b_off + hidden].copy_from_slice(&db1);
    grad
}
