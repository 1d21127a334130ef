//! Training end to end: on each device the loss falls on a real subset, the GPU follows
//! the CPU's trajectory, runs are reproducible bit for bit, the data path (resident or
//! streamed) does not change the result, and a full-batch gradient accumulated in
//! chunks equals the one-shot gradient.

mod common;
use std::path::Path;
use std::sync::OnceLock;
use wgtrain::cpu::net;
use wgtrain::data::batches::{Batch, Gather};
use wgtrain::data::Split;
use wgtrain::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use wgtrain::gpu::net::{Features, GpuNet, Precision};
use wgtrain::model::Model;
use wgtrain::optim::{OptimKind, Optimizer, Schedule};
use wgtrain::train::{self, BatchSize, Config, Quiet};

/// The first 3,000 training and 1,000 test images of the vendored Fashion-MNIST.
fn subset() -> &'static Split {
    static S: OnceLock<Split> = OnceLock::new();
    S.get_or_init(|| common::fashion_mnist(3000, 1000))
}

fn config(hidden: &[usize], batch: BatchSize, opt: &str, lr: f32, epochs: usize) -> Config {
    let s = subset();
    Config {
        model: Model::mlp(s.train.shape, hidden, s.train.classes).unwrap(),
        augment: Default::default(),
        epochs,
        batch,
        optimizer: Optimizer::new(OptimKind::parse(opt).unwrap(), lr),
        schedule: Schedule::Constant,
        seed: 5,
        log_every: 10,
        early_stop: None,
        precision: Default::default(),
    }
}

fn run(cfg: &Config, engine: &mut dyn Engine) -> train::Outcome {
    train::train(cfg, subset(), engine, None, &mut Quiet, None, &train::Control::default()).unwrap()
}

fn cpu(cfg: &Config) -> CpuEngine {
    let model = cfg.model.clone();
    CpuEngine::new(&model, model.init(cfg.seed), cfg.optimizer.kind, cfg.max_batch())
}

fn gpu_engine<'g>(gpu: &'g wgtrain::gpu::Gpu, cfg: &Config, mode: DataMode) -> GpuEngine<'g> {
    let model = cfg.model.clone();
    GpuEngine::new(
        gpu,
        &model,
        &model.init(cfg.seed),
        cfg.optimizer.kind,
        cfg.max_batch(),
        &subset().train,
        mode,
        Precision::F32,
    )
    .unwrap()
}

fn assert_learns(out: &train::Outcome, device: &str) {
    let (first, last) = (&out.epochs[0], out.epochs.last().unwrap());
    assert!(last.train_loss < first.train_loss * 0.8, "{device}: loss {} → {}", first.train_loss, last.train_loss);
    assert!(last.test_acc > 0.7, "{device}: test accuracy {} (chance is 0.1)", last.test_acc);
    assert_eq!(last.samples_seen, 3 * 3000, "{device}: every sample once per epoch, tail kept");
}

#[test]
fn cpu_training_learns_a_real_subset() {
    let cfg = config(&[64], BatchSize::Mini(100), "sgd", 0.1, 3);
    assert_learns(&run(&cfg, &mut cpu(&cfg)), "cpu");
}

#[test]
fn gpu_training_learns_a_real_subset() {
    let Some(gpu) = common::gpu() else { return };
    let cfg = config(&[64], BatchSize::Mini(100), "sgd", 0.1, 3);
    assert_learns(&run(&cfg, &mut gpu_engine(gpu, &cfg, DataMode::Resident)), "gpu");
}

/// 50 steps from the same start on the same batches: per-step losses and final
/// parameters agree to within f32 rounding drift (here a relative 1e-3).
#[test]
fn gpu_follows_the_cpu_trajectory_for_50_steps() {
    let Some(gpu) = common::gpu() else { return };
    let mut cfg = config(&[64, 32], BatchSize::Mini(60), "momentum", 0.05, 1);
    cfg.log_every = 1;
    let s = subset();
    let mut c = cpu(&cfg);
    let mut g = gpu_engine(gpu, &cfg, DataMode::Resident);
    let order = wgtrain::data::batches::epoch_order(cfg.seed, 0, s.train.rows);
    for (t, idx) in order.chunks(60).take(50).enumerate() {
        let step = cfg.optimizer.step(t as u64 + 1, cfg.optimizer.lr);
        c.train_step(&Batch::gather(&s.train, idx.to_vec(), Gather::F32), &step).unwrap();
        g.train_step(&Batch::gather(&s.train, idx.to_vec(), Gather::Indices), &step).unwrap();
        let (lc, lg) = (c.take_tally().unwrap().loss(), g.take_tally().unwrap().loss());
        assert!((lc - lg).abs() <= 1e-3 * lc.abs(), "step {}: cpu loss {lc}, gpu loss {lg}", t + 1);
    }
    let (pc, pg) = (c.params().unwrap(), g.params().unwrap());
    let scale = pc.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = pc.iter().zip(&pg).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-3 * scale, "parameters drifted by {worst} (largest parameter {scale})");
}

#[test]
fn two_gpu_runs_with_the_same_seed_give_identical_weights() {
    let Some(gpu) = common::gpu() else { return };
    let cfg = config(&[32], BatchSize::Mini(77), "adam", 1e-3, 2);
    let a = run(&cfg, &mut gpu_engine(gpu, &cfg, DataMode::Resident)).params;
    let b = run(&cfg, &mut gpu_engine(gpu, &cfg, DataMode::Resident)).params;
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "weights differ between identical runs");
}

#[test]
fn streamed_and_resident_data_give_identical_weights() {
    let Some(gpu) = common::gpu() else { return };
    let cfg = config(&[32], BatchSize::Mini(128), "sgd", 0.1, 1);
    let a = run(&cfg, &mut gpu_engine(gpu, &cfg, DataMode::Resident)).params;
    let b = run(&cfg, &mut gpu_engine(gpu, &cfg, DataMode::Streaming)).params;
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "the data path changed the result");
}

#[test]
fn pure_sgd_and_full_batch_regimes_run() {
    let cfg = config(&[16], BatchSize::Mini(1), "sgd", 0.01, 1);
    let out = run(&cfg, &mut cpu(&cfg));
    assert_eq!(out.epochs[0].step, 3000, "pure SGD: one step per sample");
    let cfg = config(&[16], BatchSize::Full, "sgd", 0.1, 4);
    let out = run(&cfg, &mut cpu(&cfg));
    assert_eq!(out.epochs.last().unwrap().step, 4, "batch gradient descent: one step per epoch");
    let losses: Vec<f64> = out.epochs.iter().map(|e| e.train_loss).collect();
    assert!(losses[3] < losses[0], "full-batch risk did not fall: {losses:?}");
    if let Some(gpu) = common::gpu() {
        let out = run(&cfg, &mut gpu_engine(gpu, &cfg, DataMode::Resident));
        assert_eq!(out.epochs.last().unwrap().step, 4);
        assert!(out.epochs[3].train_loss < out.epochs[0].train_loss);
    }
}

/// A step's gradient on the GPU is the composition of the one-shot ops bit for bit, on
/// ragged widths and on widths of whole vec4s, for a batch that reads `W` itself (3
/// rows), one that is no whole vec4s (9) and ones whose forward and input-gradient
/// products read the transposed input and gradient (`Gemm::transposes_a`: 16, 32 rows;
/// the one-shot runners compute them as `gemm_nn`).
#[test]
fn gpu_gradient_is_the_composition_of_the_one_shot_ops() {
    let Some(gpu) = common::gpu() else { return };
    let (mut transposed, mut u64_loads) = (0, 0);
    for (inp, hidden, classes) in [(21, 13, 5), (32, 16, 8), (40, 24, 12)] {
        let model = Model::mlp(wgtrain::model::Shape::Flat(inp), &[hidden], classes).unwrap();
        let mut rng = wgtrain::rng::Rng::new(3, 0);
        let params: Vec<f32> = model.init(4).iter().map(|p| p * 3.0).collect();
        for batch in [3, 9, 16, 32] {
            let x = wgtrain::verify::uniform(&mut rng, batch * inp, 2.0);
            let y: Vec<u32> = (0..batch as u32).map(|i| (i * 7 + 1) % classes as u32).collect();
            let idx: Vec<u32> = (0..batch as u32).collect();
            let mut net = GpuNet::new(gpu, &model, &params, OptimKind::Sgd, batch, Precision::F32).unwrap();
            let t = net.add_table(Features::F32(&x), &y).unwrap();
            net.accumulate_gradient(t, &idx, 1.0 / batch as f32, true).unwrap();
            let want = common::composed_gradient(gpu, &model, &params, &x, &y, (inp, hidden, classes), false);
            let what = format!("{inp}-{hidden}-{classes}, batch {batch}: the gradient");
            common::assert_same_bits(&want, &net.read_grads().unwrap(), &what);
            let forward = wgtrain::gpu::gemm::GemmParams::fc_forward(batch, inp, hidden, 0, 0, true);
            let input = wgtrain::gpu::gemm::GemmParams::fc_backward_input(batch, hidden, classes, 0, true);
            transposed += usize::from(forward.transposes_a()) + usize::from(input.transposes_a());
            let t = forward.a_transposed();
            u64_loads += usize::from(forward.transposes_a() && t.kernel(&gpu.kernels).0.name == "gemm_tn_u64");
        }
    }
    assert_eq!(transposed, 8, "the forward and input-gradient products from the transposes");
    // Where the device has SHADER_INT64, the fixed rule runs the first layer's forward
    // product of 32-16-8 and 40-24-12 at batches 16 and 32 as gemm_tn_u64 (from Xᵀ, which
    // transpose_u64 writes); the products and transposes past the first layer, at offsets
    // that are multiples of 8, take them too where their widths allow.
    let int64 = gpu.device.features().contains(wgpu::Features::SHADER_INT64);
    assert_eq!(u64_loads, if int64 { 4 } else { 0 }, "the forward products of whole 8-value words");
}

/// The lecture's macro-step: the gradient of the whole risk is the sum of the chunk
/// gradients (each scaled by 1/N) taken at the same w.
#[test]
fn accumulated_full_batch_gradient_equals_the_one_shot_gradient() {
    let s = subset();
    let model = Model::from_sizes(&[784, 24, 10]).unwrap();
    let params = model.init(3);
    let n = 300;
    let mut x = vec![0.0f32; n * 784];
    for i in 0..n {
        s.train.row_f32(i, &mut x[i * 784..(i + 1) * 784]);
    }
    let y = &s.train.labels[..n];
    let scale = 1.0 / n as f32;
    let mut ws = net::Workspace::new(&model, n);
    let mut once = vec![0.0f32; model.param_count()];
    let samples: Vec<u32> = (0..n as u32).collect();
    let draw = |from: usize, to: usize| net::Draw { seed: 0, epoch: 0, samples: &samples[from..to] };
    let k = net::Kernels::Reference;
    net::loss_and_grad(&model, &params, &x, y, n, scale, &mut once, false, &mut ws, k, draw(0, n));
    let mut acc = vec![0.0f32; model.param_count()];
    for (c, start) in [0, 128, 256].into_iter().enumerate() {
        let end = (start + 128).min(n);
        let xs = &x[start * 784..end * 784];
        net::loss_and_grad(
            &model,
            &params,
            xs,
            &y[start..end],
            end - start,
            scale,
            &mut acc,
            c > 0,
            &mut ws,
            k,
            draw(start, end),
        );
    }
    let close = |a: &[f32], b: &[f32]| {
        let m = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-5 * m)
    };
    assert!(close(&acc, &once), "CPU: chunked gradient differs from the one-shot gradient");

    let Some(gpu) = common::gpu() else { return };
    let pixels: Vec<u8> = match &s.train.features {
        wgtrain::data::FeatureData::U8(v) => v[..n * 784].to_vec(),
        _ => unreachable!(),
    };
    let mut g = GpuNet::new(gpu, &model, &params, OptimKind::Sgd, n, Precision::F32).unwrap();
    let t = g.add_table(Features::U8(&pixels), y).unwrap();
    let all: Vec<u32> = (0..n as u32).collect();
    g.accumulate_gradient(t, &all, scale, true).unwrap();
    let gpu_once = g.read_grads().unwrap();
    for (c, chunk) in all.chunks(128).enumerate() {
        g.accumulate_gradient(t, chunk, scale, c == 0).unwrap();
    }
    let gpu_acc = g.read_grads().unwrap();
    assert!(close(&gpu_once, &once), "GPU one-shot gradient differs from the CPU's");
    assert!(close(&gpu_acc, &gpu_once), "GPU: chunked gradient differs from the one-shot gradient");
}

#[test]
fn gpu_and_cpu_predictions_agree() {
    let Some(gpu) = common::gpu() else { return };
    let cfg = config(&[32], BatchSize::Mini(100), "sgd", 0.1, 1);
    let mut c = cpu(&cfg);
    let mut g = gpu_engine(gpu, &cfg, DataMode::Resident);
    let (pc, pg) = (c.predict(&subset().test).unwrap(), g.predict(&subset().test).unwrap());
    assert_eq!(pc.len(), 1000 * 10);
    let worst = pc.iter().zip(&pg).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "probabilities differ by {worst}");
    let sums_to_one = pc.chunks(10).all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    assert!(sums_to_one);
}

/// Keeps the logged interval losses (as bits) and steps; checkpoints nothing.
#[derive(Default)]
struct LossLog(Vec<(u64, u64, u64)>);

impl train::Journal for LossLog {
    fn interval(&mut self, r: &train::IntervalRecord) -> wgtrain::error::Result<()> {
        self.0.push((r.step, r.train_loss.to_bits(), r.train_acc.to_bits()));
        Ok(())
    }
    fn epoch(&mut self, r: &train::EpochRecord) -> wgtrain::error::Result<()> {
        self.0.push((r.step, r.train_loss.to_bits(), r.test_loss.to_bits()));
        Ok(())
    }
    fn checkpoint(&mut self, _: &Config, _: &train::Progress, _: &mut dyn Engine) -> wgtrain::error::Result<()> {
        Ok(())
    }
    fn best(&mut self, _: &Config, _: &[f32]) -> wgtrain::error::Result<()> {
        Ok(())
    }
    fn location(&self) -> &Path {
        Path::new(".")
    }
}

/// Runs of steps submitted together (up to `train::MAX_RUN`) give the weights and the
/// logged losses of one submission per step, bit for bit: pure SGD (B = 1) with Adam for
/// 300 steps logged every 100 (runs of 64 and 36 steps); plain SGD with weight decay and a
/// cosine schedule (fused steps, each reading its rate from its slot) at B = 1 and at B = 3
/// over two epochs of 100 steps logged every 70; and B = 7 with momentum logged every 30 of an epoch's
/// 43 steps, whose second run ends on the smaller tail batch.
#[test]
fn gpu_runs_of_steps_match_step_by_step() {
    let Some(gpu) = common::gpu() else { return };
    let mut split = subset().clone();
    split.train = split.train.head(300);
    split.test = split.test.head(100);
    let cases = [
        (BatchSize::Mini(1), "adam", 1e-3, 1, 100),
        (BatchSize::Mini(1), "sgd", 0.01, 1, 100),
        (BatchSize::Mini(3), "sgd", 0.01, 2, 70),
        (BatchSize::Mini(7), "momentum", 0.05, 2, 30),
    ];
    for (batch, opt, lr, epochs, log_every) in cases {
        let mut cfg = config(&[24], batch, opt, lr, epochs);
        cfg.log_every = log_every;
        if opt == "sgd" {
            cfg.optimizer.weight_decay = 1e-3;
            cfg.schedule = Schedule::Cosine { warmup: 0.0, min_lr: 0.0 };
        }
        let train_with = |max_run: usize| {
            let model = cfg.model.clone();
            let p = model.init(cfg.seed);
            let kind = cfg.optimizer.kind;
            let mut e = GpuEngine::new(
                gpu,
                &model,
                &p,
                kind,
                cfg.max_batch(),
                &split.train,
                DataMode::Resident,
                Precision::F32,
            )
            .unwrap();
            let mut log = LossLog::default();
            let ctl = train::Control { max_run: Some(max_run), ..train::Control::default() };
            let out = train::train(&cfg, &split, &mut e, Some(&mut log), &mut Quiet, None, &ctl).unwrap();
            (out.params, log.0)
        };
        let (p1, log1) = train_with(1);
        let (p64, log64) = train_with(train::MAX_RUN);
        assert!(log1.len() >= 4, "{opt}: only {} records", log1.len());
        let differ = p1.iter().zip(&p64).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{opt}, {batch:?}: {differ} weights differ between runs of 64 steps and single steps");
        assert_eq!(log1, log64, "{opt}, {batch:?}: the logged losses differ");
    }
}

/// A fused SGD step (plain SGD, 1 to `SMALL_BATCH` rows: the update inside the backward
/// pass) gives the weights of the same step unfused (the gradient, then
/// `optimizer_update`), bit for bit, with weight decay, over ten steps of each batch size,
/// on flat inputs and on 4×5 images flipped and shifted (the augmentation runs in both).
#[test]
fn fused_sgd_steps_match_the_gradient_then_the_update() {
    use wgtrain::data::augment::{Augment, Draws};
    use wgtrain::gpu::gemm::SMALL_BATCH;
    use wgtrain::gpu::net::{Features, GpuNet};
    use wgtrain::model::Shape;
    let Some(gpu) = common::gpu() else { return };
    let flat = Model::from_sizes(&[20, 32, 12, 5]).unwrap();
    let image = Model::mlp(Shape::Image { c: 1, h: 4, w: 5 }, &[32, 12], 5).unwrap();
    let mut rng = wgtrain::rng::Rng::new(4, 0);
    let rows = 60;
    let pixels: Vec<u8> = (0..rows * 20).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(5) as u32).collect();
    let mut opt = Optimizer::new(OptimKind::Sgd, 0.05);
    opt.weight_decay = 1e-3;
    let augment = Augment { flip: true, shift: 1 };
    for (model, batch) in (1..=SMALL_BATCH).map(|b| (&flat, b)).chain([(&image, 1), (&image, 3)]) {
        let net = || {
            let mut n = GpuNet::new(gpu, model, &model.init(9), OptimKind::Sgd, SMALL_BATCH, Precision::F32).unwrap();
            let t = n.add_table(Features::U8(&pixels), &labels).unwrap();
            if model.input != flat.input {
                n.begin_epoch(&Draws { seed: 3, epoch: 1, augment }).unwrap();
            }
            (n, t)
        };
        let ((mut fused, tf), (mut separate, ts)) = (net(), net());
        assert!(fused.fused_sgd(batch), "B={batch}: the step is not fused");
        for t in 0..10u64 {
            let idx: Vec<u32> = (0..batch as u32).map(|i| (t as u32 * 7 + i * 13) % rows as u32).collect();
            let st = opt.step(t + 1, opt.lr);
            fused.train_step(tf, &idx, &st).unwrap();
            separate.accumulate_gradient(ts, &idx, 1.0 / batch as f32, true).unwrap();
            separate.apply_update(&st).unwrap();
        }
        let (a, b) = (fused.read_params().unwrap(), separate.read_params().unwrap());
        assert!(a.iter().zip(model.init(9)).any(|(p, q)| *p != q), "B={batch}: the steps changed nothing");
        let differ = a.iter().zip(&b).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
        assert_eq!(differ, 0, "B={batch}: {differ} parameters differ between fused and separate steps");
    }
}
