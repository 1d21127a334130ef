//! The im2col path of the convolution (`shaders/conv_im2col.wgsl` and the GEMMs over its
//! patches, `gpu::conv_im2col`): each new kernel bit for bit against its `f32` CPU twin
//! in `cpu::conv`, and the whole path against the convolution's `f64` reference, over the
//! covering ragged shapes of `verify::conv::CONV_CASES` (channels 1, 3, 5; sizes 1, 7, 28;
//! kernel 1, 3, 5; padding 0, 1, 2; stride 1, 2; batch 1, 7, 128) and shapes whose
//! products take the vec4 GEMM kernels (channels and patch columns multiples of 4, as the
//! cnn preset's second convolution, which is among them).

mod common;
use common::{assert_pass, gpu};
use wgtrain::cpu::conv::Conv2dShape;
use wgtrain::gpu::conv_im2col::{im2col_wins, takes_im2col};
use wgtrain::gpu::net::Precision;
use wgtrain::verify;
use wgtrain::verify::conv::CONV_CASES;

/// The ragged cases, then vec4-aligned ones: `(B, C_in, H, W, C_out, k, stride, pad)`.
fn shapes() -> Vec<Conv2dShape> {
    let aligned = [(7, 4, 7, 7, 8, 3, 1, 1), (1, 4, 28, 28, 8, 1, 2, 0), (7, 32, 14, 14, 64, 3, 1, 1)];
    CONV_CASES.iter().chain(&aligned).map(|&c| verify::conv::conv_shape(c).unwrap()).collect()
}

#[test]
fn im2col_kernels_match_cpu_bit_for_bit() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for (i, s) in shapes().iter().enumerate() {
        for mask in [false, true] {
            out.extend(verify::conv::conv_im2col_kernels(gpu, s, mask, 70 + i as u64).unwrap());
        }
    }
    assert_pass(&out);
}

#[test]
fn im2col_path_matches_the_convolution() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for (i, s) in shapes().iter().enumerate() {
        for on in [false, true] {
            out.extend(verify::conv::conv2d_im2col(gpu, s, on, 90 + i as u64).unwrap());
        }
    }
    assert_pass(&out);
}

#[test]
fn im2col_path_matches_the_convolution_at_the_cnn_batch() {
    let Some(gpu) = gpu() else { return };
    let s = Conv2dShape::new(128, 32, 14, 14, 64, 3, 1, 1).unwrap();
    assert_pass(&verify::conv::conv2d_im2col(gpu, &s, true, 111).unwrap());
}

#[test]
fn the_rule_takes_im2col_for_the_second_cnn_convolution_only() {
    let first = Conv2dShape::new(128, 1, 28, 28, 32, 3, 1, 1).unwrap();
    let second = Conv2dShape::new(128, 32, 14, 14, 64, 3, 1, 1).unwrap();
    assert!(!im2col_wins(&first));
    assert!(im2col_wins(&second));
    let Some(gpu) = gpu() else { return };
    assert_eq!(wgtrain::gpu::conv_im2col::im2col_batch(gpu, &first, 1024), 0);
    // As many samples as one binding holds patches for (196 positions × 288 values × 4 bytes).
    let cap = wgtrain::gpu::conv_im2col::im2col_batch(gpu, &second, 1 << 20);
    let allowed = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
    assert!(cap >= 128 && (cap as u64 + 1) * 196 * 288 * 4 > allowed, "{cap}");
    assert!(takes_im2col(gpu, &second, 128) && !takes_im2col(gpu, &second, cap + 1));
}

/// A network built for batches of 1,024 (more than one binding of llvmpipe holds patches for:
/// training evaluates in chunks of 1,024) still runs its small training batches through
/// im2col: the same gradient, bit for bit, as a network built for those batches alone.
#[test]
fn small_steps_take_im2col_in_a_network_built_for_large_batches() {
    use wgtrain::gpu::net::{Features, GpuNet};
    use wgtrain::model::{Shape, Spec};
    use wgtrain::optim::OptimKind;
    let Some(gpu) = gpu() else { return };
    let model = Spec::parse("cnn", &[]).unwrap().build(Shape::Image { c: 1, h: 28, w: 28 }, 10).unwrap();
    let mut rng = wgtrain::rng::Rng::new(6, 1);
    let x: Vec<f32> = (0..12 * model.inputs()).map(|_| rng.uniform() as f32).collect();
    let y: Vec<u32> = (0..12u32).map(|i| i % 10).collect();
    let idx = [3u32, 11, 0, 7, 5, 2, 9];
    let grad = |max_batch: usize| {
        let mut g = GpuNet::new(gpu, &model, &model.init(2), OptimKind::Sgd, max_batch, Precision::F32).unwrap();
        let t = g.add_table(Features::F32(&x), &y).unwrap();
        g.accumulate_gradient(t, &idx, 1.0 / 7.0, true).unwrap();
        g.read_grads().unwrap()
    };
    let (small, large) = (grad(7), grad(1024));
    assert!(small == large, "a batch of 7 took another path in the network built for 1,024");
}

/// The parameters after 4 SGD steps of the cnn preset (its second convolution through
/// im2col) on batches of 6, through the ring (`ring`) or step by step.
fn four_cnn_steps(ring: bool) -> Option<Vec<f32>> {
    use wgtrain::gpu::net::{Features, GpuNet};
    use wgtrain::model::{Shape, Spec};
    use wgtrain::optim::{OptimKind, Optimizer};
    let gpu = gpu()?;
    let model = Spec::parse("cnn", &[]).unwrap().build(Shape::Image { c: 1, h: 28, w: 28 }, 10).unwrap();
    let mut rng = wgtrain::rng::Rng::new(4, 1);
    let rows = 20;
    let x: Vec<f32> = (0..rows * model.inputs()).map(|_| rng.uniform() as f32).collect();
    let y: Vec<u32> = (0..rows as u32).map(|i| i % 10).collect();
    let mut g = GpuNet::new(gpu, &model, &model.init(5), OptimKind::Sgd, 6, Precision::F32).unwrap();
    let t = g.add_table(Features::F32(&x), &y).unwrap();
    let steps: Vec<Vec<u32>> = (0..4u32).map(|s| (0..6).map(|j| (s * 7 + j * 3) % 20).collect()).collect();
    let opt = Optimizer::new(OptimKind::Sgd, 0.05);
    let opts: Vec<_> = (0..4).map(|s| opt.step(s + 1, opt.lr)).collect();
    if ring {
        let idx: Vec<&[u32]> = steps.iter().map(Vec::as_slice).collect();
        g.train_steps(t, &idx, &opts).unwrap();
    } else {
        for (idx, o) in steps.iter().zip(&opts) {
            g.train_step(t, idx, o).unwrap();
        }
    }
    Some(g.read_params().unwrap())
}

#[test]
fn cnn_training_through_im2col_is_bit_reproducible() {
    let Some(a) = four_cnn_steps(true) else { return };
    let b = four_cnn_steps(true).unwrap();
    let c = four_cnn_steps(false).unwrap();
    assert!(a == b, "two runs from the same start differ");
    assert!(a == c, "steps in one submission differ from steps one by one");
}
