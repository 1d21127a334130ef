//! Shared by the test binaries: one GPU per binary, or a loud skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wgtrain::data::{load_idx_dir, Split};
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
