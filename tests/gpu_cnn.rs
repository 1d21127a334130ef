//! The GPU network on layer sequences (convolution, max-pooling, stand-alone and fused
//! ReLU, dropout): its gradient equals the CPU reference's, resident and streamed data
//! draw the same dropout masks, training is bit-for-bit reproducible (also when steps go
//! in one submission), and evaluation (dropout the identity) matches the CPU engine.

mod common;
use std::path::PathBuf;
use wgtrain::cpu::net;
use wgtrain::data::augment::{self, Augment, Draws};
use wgtrain::data::{Dataset, FeatureData};
use wgtrain::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use wgtrain::gpu::net::Precision;
use wgtrain::gpu::net::{Features, GpuNet};
use wgtrain::model::{Model, Shape, Spec};
use wgtrain::optim::{OptimKind, Optimizer};
use wgtrain::rng::Rng;

const SEED: u64 = 11;
const EPOCH: usize = 3;

/// `rows` samples of `model`'s input, uniform in `[0, 1)`, and labels below its classes.
fn table(model: &Model, rows: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed, 1);
    let x = (0..rows * model.inputs()).map(|_| rng.uniform() as f32).collect();
    let y = (0..rows).map(|_| (rng.uniform() * model.classes() as f64) as u32 % model.classes() as u32).collect();
    (x, y)
}

/// The draws of epoch [`EPOCH`] under [`SEED`] with `augment`.
fn draws(epoch: usize, augment: Augment) -> Draws {
    Draws { seed: SEED, epoch: epoch as u32, augment }
}

/// The CPU reference gradient of the mean loss over rows `idx` (dropout and augmentation
/// keyed by `idx`).
fn cpu_grad(model: &Model, params: &[f32], x: &[f32], y: &[u32], idx: &[u32], augment: Augment) -> Vec<f32> {
    let d = model.inputs();
    let mut xb: Vec<f32> = idx.iter().flat_map(|&i| x[i as usize * d..(i as usize + 1) * d].iter().copied()).collect();
    if let (false, Shape::Image { c, h, w }) = (augment.is_none(), model.input) {
        let plain = xb.clone();
        augment::augment(&plain, &mut xb, idx, (c, h, w), SEED, EPOCH as u32, &augment);
    }
    let yb: Vec<u32> = idx.iter().map(|&i| y[i as usize]).collect();
    let b = idx.len();
    let mut ws = net::Workspace::new(model, b);
    let mut g = vec![0.0f32; model.param_count()];
    let draw = net::Draw { seed: SEED, epoch: EPOCH as u32, samples: idx };
    let k = net::Kernels::Reference;
    net::loss_and_grad(model, params, &xb, &yb, b, 1.0 / b as f32, &mut g, false, &mut ws, k, draw);
    g
}

/// Fails unless `max |g − c| ≤ 1e-4 · max |c|`.
fn assert_close(what: &str, g: &[f32], c: &[f32]) {
    assert_eq!(g.len(), c.len());
    let scale = c.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (at, err) = g.iter().zip(c).map(|(a, b)| (a - b).abs()).enumerate().fold((0, 0.0f32), |m, (i, e)| {
        if e > m.1 || e.is_nan() {
            (i, e)
        } else {
            m
        }
    });
    assert!(scale > 0.0, "{what}: the CPU gradient is zero");
    assert!(
        err <= 1e-4 * scale,
        "{what}: |gpu − cpu| = {err} at {at} (gpu {}, cpu {}), max |cpu| {scale}",
        g[at],
        c[at]
    );
}

/// The GPU gradient over rows `idx` of a resident table equals the CPU reference's; the
/// same rows streamed (device rows 0..B, their data-set indices as keys) give the same bits.
fn check_gradient(model: &Model, batches: &[&[u32]], augment: Augment) {
    let Some(gpu) = common::gpu() else { return };
    let rows = 20;
    let (x, y) = table(model, rows, 2);
    let params = model.init(4);
    let max_batch = batches.iter().map(|b| b.len()).max().unwrap();
    let mut g = GpuNet::new(gpu, model, &params, OptimKind::Sgd, max_batch, Precision::F32).unwrap();
    g.begin_epoch(&draws(EPOCH, augment)).unwrap();
    let resident = g.add_table(Features::F32(&x), &y).unwrap();
    let stream = g.add_stream_table(false).unwrap();
    for idx in batches {
        let scale = 1.0 / idx.len() as f32;
        g.accumulate_gradient(resident, idx, scale, true).unwrap();
        let gpu_grad = g.read_grads().unwrap();
        assert_close(
            &format!("{} batch {}", model.spec(), idx.len()),
            &gpu_grad,
            &cpu_grad(model, &params, &x, &y, idx, augment),
        );

        let d = model.inputs();
        let xs: Vec<f32> = idx.iter().flat_map(|&i| x[i as usize * d..(i as usize + 1) * d].iter().copied()).collect();
        let ys: Vec<u32> = idx.iter().map(|&i| y[i as usize]).collect();
        g.write_stream(stream, Features::F32(&xs), &ys, idx).unwrap();
        let rows: Vec<u32> = (0..idx.len() as u32).collect();
        g.accumulate_gradient(stream, &rows, scale, true).unwrap();
        assert!(g.read_grads().unwrap() == gpu_grad, "streamed rows give another gradient than resident ones");
    }
}

#[test]
fn small_cnn_gradient_matches_cpu() {
    let model = wgtrain::verify::small_cnn().unwrap();
    check_gradient(&model, &[&[9], &[13, 2, 7, 19, 0, 5, 11]], Augment::default());
    check_gradient(&model, &[&[13, 2, 7, 19, 0, 5, 11]], Augment { flip: true, shift: 3 });
}

#[test]
fn cnn_preset_gradient_matches_cpu() {
    let model = Spec::parse("cnn", &[]).unwrap().build(Shape::Image { c: 1, h: 28, w: 28 }, 10).unwrap();
    check_gradient(&model, &[&[3], &[13, 2, 7, 19, 0, 5, 11]], Augment::default());
    check_gradient(&model, &[&[13, 2, 7, 19, 0, 5, 11]], Augment { flip: true, shift: 2 });
}

/// Two dropout layers of the same width: the first draws the masks a lone dropout layer
/// draws (keyed by the run's seed, so a model with one keeps its masks), the second its
/// own (not the first's again), on the CPU; and the GPU's gradient is the CPU's.
#[test]
fn two_dropout_layers_draw_their_own_masks() {
    let spec = "linear:16,dropout:0.5,linear:16,dropout:0.5,linear";
    let model = Spec::parse(spec, &[]).unwrap().build(Shape::Flat(6), 3).unwrap();
    let (x, _) = table(&model, 8, 7);
    let samples: Vec<u32> = (0..8).collect();
    let mut ws = net::Workspace::new(&model, 8);
    let draw = net::Draw { seed: SEED, epoch: EPOCH as u32, samples: &samples };
    net::forward(&model, &model.init(3), &x, 8, &mut ws, net::Kernels::Reference, Some(draw));
    let kept = |i: usize| ws.acts[i][..8 * 16].iter().map(|v| *v != 0.0).collect::<Vec<_>>();
    let lone: Vec<bool> = samples
        .iter()
        .flat_map(|&n| (0..16).map(move |j| wgtrain::rng::dropout_keep(SEED, EPOCH as u32, n, j, 0.5)))
        .collect();
    assert_eq!(kept(1), lone, "the first dropout layer's masks are not a lone layer's");
    let same = kept(1).iter().zip(&kept(3)).filter(|(a, b)| a == b).count();
    assert!(same < 8 * 16 * 3 / 4, "the two layers keep the same elements ({same} of 128 agree)");
    check_gradient(&model, &[&[9], &[13, 2, 7, 19, 0, 5, 11]], Augment::default());

    // A step recorded in epoch EPOCH − 1 and re-keyed for EPOCH (each dropout node's
    // parameter block rewritten with its own seed) gives the CPU's gradient of EPOCH.
    let Some(gpu) = common::gpu() else { return };
    let (x, y) = table(&model, 20, 2);
    let params = model.init(4);
    let idx = [13, 2, 7, 19, 0, 5, 11];
    let mut g = GpuNet::new(gpu, &model, &params, OptimKind::Sgd, idx.len(), Precision::F32).unwrap();
    let t = g.add_table(Features::F32(&x), &y).unwrap();
    for epoch in [EPOCH - 1, EPOCH] {
        g.begin_epoch(&draws(epoch, Augment::default())).unwrap();
        g.accumulate_gradient(t, &idx, 1.0 / idx.len() as f32, true).unwrap();
    }
    let cpu = cpu_grad(&model, &params, &x, &y, &idx, Augment::default());
    assert_close("re-keyed for a new epoch", &g.read_grads().unwrap(), &cpu);
}

/// The parameters after 10 SGD steps of `small_cnn` with dropout on batches of 8, run
/// through the ring (`ring`) or step by step.
fn ten_steps(ring: bool) -> Option<Vec<f32>> {
    let gpu = common::gpu()?;
    let model = wgtrain::verify::small_cnn().unwrap();
    let (x, y) = table(&model, 20, 3);
    let mut g = GpuNet::new(gpu, &model, &model.init(5), OptimKind::Sgd, 8, Precision::F32).unwrap();
    let t = g.add_table(Features::F32(&x), &y).unwrap();
    let steps: Vec<Vec<u32>> = (0..10u32).map(|s| (0..8).map(|j| (s * 7 + j * 3) % 20).collect()).collect();
    let opt = Optimizer::new(OptimKind::Sgd, 0.05);
    let opts: Vec<_> = (0..10).map(|s| opt.step(s + 1, opt.lr)).collect();
    // Two epochs of five steps: begin_epoch must reach the recorded steps.
    for (e, (s, o)) in steps.chunks(5).zip(opts.chunks(5)).enumerate() {
        g.begin_epoch(&draws(e, Augment::default())).unwrap();
        if ring {
            let idx: Vec<&[u32]> = s.iter().map(Vec::as_slice).collect();
            g.train_steps(t, &idx, o).unwrap();
        } else {
            for (idx, o) in s.iter().zip(o) {
                g.train_step(t, idx, o).unwrap();
            }
        }
    }
    Some(g.read_params().unwrap())
}

#[test]
fn cnn_training_with_dropout_is_bit_reproducible() {
    let Some(a) = ten_steps(true) else { return };
    let b = ten_steps(true).unwrap();
    let c = ten_steps(false).unwrap();
    let model = wgtrain::verify::small_cnn().unwrap();
    assert!(a != model.init(5), "the steps changed nothing");
    assert!(a == b, "two runs from the same start differ");
    assert!(a == c, "steps in one submission differ from steps one by one");
}

#[test]
fn cnn_evaluation_matches_cpu_engine() {
    let Some(gpu) = common::gpu() else { return };
    let model = wgtrain::verify::small_cnn().unwrap();
    let rows = 37;
    let (x, y) = table(&model, rows, 6);
    let data = Dataset {
        source: PathBuf::from("random"),
        features: FeatureData::F32(x),
        labels: y,
        rows,
        width: model.inputs(),
        shape: model.input,
        classes: model.classes(),
    };
    let params = model.init(7);
    let mut cpu = CpuEngine::new(&model, params.clone(), OptimKind::Sgd, 16);
    let mut dev =
        GpuEngine::new(gpu, &model, &params, OptimKind::Sgd, 16, &data, DataMode::Resident, Precision::F32).unwrap();
    dev.begin_epoch(draws(EPOCH, Augment { flip: true, shift: 2 })).unwrap();
    let (c, g) = (cpu.evaluate(&data).unwrap(), dev.evaluate(&data).unwrap());
    assert_eq!(g.samples, rows as u64);
    assert_eq!(g.correct, c.correct, "accuracy differs");
    assert!((g.loss() - c.loss()).abs() <= 1e-5 * c.loss().abs(), "loss: gpu {} cpu {}", g.loss(), c.loss());
}
