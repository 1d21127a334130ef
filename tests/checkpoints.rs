//! Checkpoints: resume is bit-exact on both devices, weights round-trip, an interrupted
//! write leaves the previous checkpoint valid, a NaN stops the run with the last good
//! weights readable, and corrupt or mismatched files are refused with a clear error.

mod common;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wgtrain::checkpoint;
use wgtrain::data::Split;
use wgtrain::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use wgtrain::model::Model;
use wgtrain::optim::{OptimKind, Optimizer, Schedule};
use wgtrain::run::{self, DataSpec, RunDir};
use wgtrain::train::{self, BatchSize, Config, Control, Finish, Quiet};

fn subset() -> &'static Split {
    static S: OnceLock<Split> = OnceLock::new();
    S.get_or_init(|| common::fashion_mnist(2000, 500))
}

/// The data `subset` holds, as a run folder records it.
fn spec() -> DataSpec {
    let data = common::fashion_mnist_dir();
    DataSpec {
        data,
        test: None,
        classes: None,
        delimiter: None,
        limit: Some(2000),
        seed: 9,
        val: None,
        normalize: None,
        input: None,
        content_hash: None,
    }
}

/// A new run folder for `cfg` on `subset` (the run folder's API changed with the `run`
/// module: it writes its config.json from typed values, and resume needs the data spec).
fn new_run(dir: &Path, cfg: &Config) -> RunDir {
    new_run_on(dir, cfg, subset())
}

/// [`new_run`] on other data.
fn new_run_on(dir: &Path, cfg: &Config, data: &Split) -> RunDir {
    RunDir::create(Some(dir), false, cfg, &spec(), data, "test device").unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-ckpt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn config(opt: &str, schedule: Schedule) -> Config {
    Config {
        model: Model::from_sizes(&[784, 48, 10]).unwrap(),
        augment: Default::default(),
        epochs: 3,
        batch: BatchSize::Mini(64),
        optimizer: Optimizer::new(OptimKind::parse(opt).unwrap(), if opt == "adam" { 1e-3 } else { 0.05 }),
        schedule,
        seed: 9,
        log_every: 8,
        early_stop: None,
        precision: Default::default(),
    }
}

/// Builds a fresh engine for `cfg` on `data` on the GPU when `gpu` is given, else on the CPU.
fn engine<'g>(cfg: &Config, gpu: Option<&'g wgtrain::gpu::Gpu>, data: &Split) -> Box<dyn Engine + 'g> {
    let model = cfg.model.clone();
    let p = model.init(cfg.seed);
    match gpu {
        Some(g) => {
            let (kind, rows, mode) = (cfg.optimizer.kind, cfg.max_batch(), DataMode::Resident);
            Box::new(GpuEngine::new(g, &model, &p, kind, rows, &data.train, mode, cfg.precision).unwrap())
        }
        None => Box::new(CpuEngine::new(&model, p, cfg.optimizer.kind, cfg.max_batch())),
    }
}

/// The logged losses, in order, as bit patterns (every interval and epoch record).
fn loss_log(dir: &Path) -> Vec<(String, u64, u64)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["kind"].as_str().unwrap().to_string(),
                v["step"].as_u64().unwrap(),
                v["train_loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

/// `cfg` trained on `data` without a stop, and stopped after `stop` steps (on a logging
/// boundary, where it lands at `(epoch, batch)`) then resumed: the same weights, bit for
/// bit, and the same logged losses.
fn resume_is_bit_exact(
    gpu: Option<&wgtrain::gpu::Gpu>,
    name: &str,
    cfg: &Config,
    data: &Split,
    stop: u64,
    at: (usize, usize),
) {
    // Uninterrupted.
    let full_dir = scratch(&format!("{name}-full"));
    let mut run = new_run_on(&full_dir, cfg, data);
    let full =
        train::train(cfg, data, engine(cfg, gpu, data).as_mut(), Some(&mut run), &mut Quiet, None, &Control::default())
            .unwrap();
    assert_eq!(full.finish, Finish::Completed);
    // Stopped, then resumed.
    let dir = scratch(&format!("{name}-resumed"));
    let mut run = new_run_on(&dir, cfg, data);
    let ctl = Control { stop_after: Some(stop), ..Control::default() };
    let first =
        train::train(cfg, data, engine(cfg, gpu, data).as_mut(), Some(&mut run), &mut Quiet, None, &ctl).unwrap();
    assert_eq!(first.finish, Finish::Interrupted(stop));
    drop(run);
    let r = run::load_resume(&dir).unwrap();
    assert_eq!((r.progress.epoch, r.progress.batch, r.progress.step), (at.0, at.1, stop));
    let mut e = engine(&r.config, gpu, data);
    e.set_state(&r.params, &r.optim_state).unwrap();
    let mut run = RunDir::reopen(&r, data, "test device").unwrap();
    let second =
        train::train(&r.config, data, e.as_mut(), Some(&mut run), &mut Quiet, Some(r.progress), &Control::default())
            .unwrap();
    assert_eq!(second.finish, Finish::Completed);
    let differ = full.params.iter().zip(&second.params).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(differ, 0, "{name}: {differ} weights differ from the uninterrupted run");
    assert_eq!(loss_log(&full_dir), loss_log(&dir), "{name}: the logged loss sequences differ");
    let (a, b) = (full.epochs.last().unwrap(), second.epochs.last().unwrap());
    assert_eq!((a.test_loss.to_bits(), a.train_loss.to_bits()), (b.test_loss.to_bits(), b.train_loss.to_bits()));
}

/// Stopped mid-epoch 2 (step 48 of 32 per epoch, on a logging boundary).
fn mlp_resume(gpu: Option<&wgtrain::gpu::Gpu>, name: &str) {
    let cfg = config("adam", Schedule::Cosine { warmup: 0.5, min_lr: 0.0 });
    resume_is_bit_exact(gpu, name, &cfg, subset(), 48, (1, 16));
}

#[test]
fn resume_is_bit_exact_on_the_cpu() {
    mlp_resume(None, "cpu");
}

#[test]
fn resume_is_bit_exact_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    mlp_resume(Some(gpu), "gpu");
}

/// The `cnn` preset as `--model cnn` configures it (its augmentation included), on 384
/// images in batches of 32 for 2 epochs, stopped after step 18 (mid-epoch 2).
fn cnn_resume(gpu: Option<&wgtrain::gpu::Gpu>, name: &str) {
    static S: OnceLock<Split> = OnceLock::new();
    let data = S.get_or_init(|| {
        let mut s = subset().clone();
        s.train = s.train.head(384);
        s.test = s.test.head(100);
        s
    });
    let mut cfg = cnn_config(data);
    (cfg.batch, cfg.epochs, cfg.log_every) = (BatchSize::Mini(32), 2, 6);
    resume_is_bit_exact(gpu, name, &cfg, data, 18, (1, 6));
}

/// `--model cnn` with its defaults on `data` (and an AdamW rate schedule with warm-up).
fn cnn_config(data: &Split) -> Config {
    use clap::Parser;
    let cli =
        wgtrain::cli::Cli::try_parse_from(["wgtrain", "train", "--model", "cnn", "--optimizer", "adamw"]).unwrap();
    let wgtrain::cli::Command::Train(a) = cli.command.unwrap() else { unreachable!() };
    let cfg = a.config(data).unwrap();
    assert!(!cfg.augment.is_none(), "the cnn preset augments");
    cfg
}

#[test]
fn cnn_resume_is_bit_exact_on_the_cpu() {
    cnn_resume(None, "cnn-cpu");
}

#[test]
fn cnn_resume_is_bit_exact_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    cnn_resume(Some(gpu), "cnn-gpu");
}

/// A stop (with its checkpoint) at step 77, inside what would have been one run of
/// steps handed to the engine together (`train::MAX_RUN`, 64; logging every 100 steps,
/// so runs of 64 and 36 steps), resumes bit-exactly: the same weights, and the same
/// logged losses after the stopped epoch (within it the stop adds a metrics read at step
/// 77, so those records differ by design). `cfg` trains 2 epochs on `data`.
fn resume_mid_run_is_bit_exact(gpu: Option<&wgtrain::gpu::Gpu>, name: &str, cfg: &Config, data: &Split) {
    let BatchSize::Mini(batch) = cfg.batch else { panic!("{name}: a mini-batch size") };
    let per_epoch = data.train.rows.div_ceil(batch) as u64;
    assert!(per_epoch > 100, "{name}: 77 and 100 lie in the first epoch");
    let full_dir = scratch(&format!("{name}-midrun-full"));
    let mut run = new_run_on(&full_dir, cfg, data);
    let every = Control { checkpoint_every: Some(50), ..Control::default() };
    let full =
        train::train(cfg, data, engine(cfg, gpu, data).as_mut(), Some(&mut run), &mut Quiet, None, &every).unwrap();
    assert_eq!(full.finish, Finish::Completed);
    let dir = scratch(&format!("{name}-midrun-resumed"));
    let mut run = new_run_on(&dir, cfg, data);
    let stop = Control { stop_after: Some(77), checkpoint_every: Some(50), ..Control::default() };
    let first =
        train::train(cfg, data, engine(cfg, gpu, data).as_mut(), Some(&mut run), &mut Quiet, None, &stop).unwrap();
    assert_eq!(first.finish, Finish::Interrupted(77));
    drop(run);
    let r = run::load_resume(&dir).unwrap();
    assert_eq!((r.progress.epoch, r.progress.batch, r.progress.step), (0, 77, 77));
    let mut e = engine(&r.config, gpu, data);
    e.set_state(&r.params, &r.optim_state).unwrap();
    let mut run = RunDir::reopen(&r, data, "test device").unwrap();
    let second =
        train::train(&r.config, data, e.as_mut(), Some(&mut run), &mut Quiet, Some(r.progress), &every).unwrap();
    assert_eq!(second.finish, Finish::Completed);
    let differ = full.params.iter().zip(&second.params).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(differ, 0, "{name}: {differ} weights differ from the uninterrupted run");
    let later = |dir: &Path| loss_log(dir).into_iter().filter(|(_, step, _)| *step > per_epoch).collect::<Vec<_>>();
    assert!(later(&full_dir).len() >= 2);
    assert_eq!(later(&full_dir), later(&dir), "{name}: the logged losses of epoch 2 differ");
    let (a, b) = (full.epochs.last().unwrap(), second.epochs.last().unwrap());
    assert_eq!((a.test_loss.to_bits(), a.train_loss.to_bits()), (b.test_loss.to_bits(), b.train_loss.to_bits()));
}

/// Adam, batches of 16 (125 steps per epoch).
fn midrun_config() -> Config {
    let mut cfg = config("adam", Schedule::Cosine { warmup: 0.5, min_lr: 0.0 });
    cfg.batch = BatchSize::Mini(16);
    cfg.epochs = 2;
    cfg.log_every = 100;
    cfg
}

#[test]
fn resume_mid_run_is_bit_exact_on_the_cpu() {
    resume_mid_run_is_bit_exact(None, "cpu", &midrun_config(), subset());
}

/// On the GPU also in mixed precision (the resumed engine takes the precision the run
/// recorded), and pure SGD (`--batch 1`, plain SGD with weight decay: the fused steps,
/// whose update runs inside the backward pass), 250 steps per epoch.
#[test]
fn resume_mid_run_is_bit_exact_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    resume_mid_run_is_bit_exact(Some(gpu), "gpu", &midrun_config(), subset());
    let mixed = Config { precision: wgtrain::gpu::net::Precision::Mixed, ..midrun_config() };
    resume_mid_run_is_bit_exact(Some(gpu), "gpu-mixed", &mixed, subset());
    let mut cfg = midrun_config();
    cfg.batch = BatchSize::Mini(1);
    cfg.optimizer = Optimizer::new(OptimKind::Sgd, 0.01);
    cfg.optimizer.weight_decay = 1e-3;
    let mut data = subset().clone();
    data.train = data.train.head(250);
    resume_mid_run_is_bit_exact(Some(gpu), "gpu-b1", &cfg, &data);
}

#[test]
fn weights_round_trip_with_the_same_predictions() {
    let cfg = config("sgd", Schedule::Constant);
    let mut e = engine(&cfg, None, subset());
    let mut c = cfg.clone();
    c.epochs = 1;
    let out = train::train(&c, subset(), e.as_mut(), None, &mut Quiet, None, &Control::default()).unwrap();
    let dir = scratch("roundtrip");
    std::fs::create_dir_all(&dir).unwrap();
    let model = cfg.model.clone();
    let path = dir.join("model.safetensors");
    checkpoint::save_weights(&path, &model, &out.params, HashMap::from([("note".into(), "x".into())])).unwrap();
    let w = checkpoint::load_weights(&path).unwrap();
    assert_eq!(w.model, model);
    assert_eq!(w.metadata["note"], "x");
    assert!(w.params.iter().zip(&out.params).all(|(a, b)| a.to_bits() == b.to_bits()));
    let p1 = e.predict(&subset().test).unwrap();
    let p2 = CpuEngine::new(&w.model, w.params, OptimKind::Sgd, 64).predict(&subset().test).unwrap();
    assert_eq!(p1, p2);
}

#[test]
fn an_interrupted_write_leaves_the_previous_checkpoint_valid() {
    let dir = scratch("atomic");
    std::fs::create_dir_all(&dir).unwrap();
    let model = Model::from_sizes(&[4, 3, 2]).unwrap();
    let path = dir.join("model.safetensors");
    checkpoint::save_weights(&path, &model, &model.init(1), HashMap::new()).unwrap();
    // A crash mid-write leaves at most a partial temporary file beside the checkpoint.
    std::fs::write(dir.join(".model.safetensors.tmp"), b"\x10\x00\x00\x00partial").unwrap();
    let w = checkpoint::load_weights(&path).unwrap();
    assert_eq!(w.params, model.init(1));
    // A write that fails (its folder is a file) reports the path and touches nothing.
    let blocked = dir.join("model.safetensors").join("x.safetensors");
    let e = checkpoint::save_weights(&blocked, &model, &model.init(2), HashMap::new()).unwrap_err().to_string();
    assert!(e.contains("x.safetensors"), "{e}");
    assert_eq!(checkpoint::load_weights(&path).unwrap().params, model.init(1));
    // The next successful write replaces it whole.
    checkpoint::save_weights(&path, &model, &model.init(3), HashMap::new()).unwrap();
    assert_eq!(checkpoint::load_weights(&path).unwrap().params, model.init(3));
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_refused() {
    let dir = scratch("corrupt");
    std::fs::create_dir_all(&dir).unwrap();
    let model = Model::from_sizes(&[4, 3, 2]).unwrap();
    let good = dir.join("good.safetensors");
    checkpoint::save_weights(&good, &model, &model.init(1), HashMap::new()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a valid safetensors file"),
        ("truncated", bytes[..bytes.len() - 5].to_vec(), "not a valid safetensors file"),
        ("garbage", b"\xff\xff\xff\xff\xff\xff\xff\x7fhello".to_vec(), "not a valid safetensors file"),
    ];
    for (name, b, want) in cases {
        let p = dir.join(format!("{name}.safetensors"));
        std::fs::write(&p, b).unwrap();
        let e = checkpoint::load_weights(&p).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(want) && e.contains(name), "{name}: {e}");
    }
    // Another architecture: layers that do not chain.
    let bad = dir.join("chain.safetensors");
    let w0 = vec![0.0f32; 12];
    let w2 = vec![0.0f32; 10];
    let b = checkpoint::to_bytes(
        &[
            ("0.weight".into(), vec![3, 4], &w0),
            ("0.bias".into(), vec![3], &w0[..3]),
            ("2.weight".into(), vec![2, 5], &w2),
        ],
        HashMap::new(),
    )
    .unwrap();
    std::fs::write(&bad, b).unwrap();
    let e = checkpoint::load_weights(&bad).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("2.weight takes 5 inputs, the layer before gives 3"), "{e}");
    assert!(run::load_resume(&dir).map(|_| ()).unwrap_err().to_string().contains("no state.safetensors"));
}

/// The learning rate jumps by 1e12 after the first epoch: the loss blows up, the run
/// stops with a clear message, and the epoch-1 checkpoint stays good and readable.
fn nan_stops_the_run(gpu: Option<&wgtrain::gpu::Gpu>, name: &str) {
    let mut cfg = config("sgd", Schedule::Step { every: 1, gamma: 1e12 });
    cfg.epochs = 2;
    let dir = scratch(&format!("nan-{name}"));
    let mut run = new_run(&dir, &cfg);
    let err = train::train(
        &cfg,
        subset(),
        engine(&cfg, gpu, subset()).as_mut(),
        Some(&mut run),
        &mut Quiet,
        None,
        &Control::default(),
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(err.contains("NaN or infinite") && err.contains("lower learning rate"), "{name}: {err}");
    assert!(err.contains("last good checkpoint (step 32)"), "{name}: {err}");
    let w = checkpoint::load_weights(&dir.join("model.safetensors")).unwrap();
    assert!(w.params.iter().all(|v| v.is_finite()), "{name}: non-finite weights were saved");
    let r = run::load_resume(&dir).unwrap();
    assert_eq!(r.progress.step, 32);
}

#[test]
fn a_nan_stops_the_run_with_the_last_good_weights_on_the_cpu() {
    nan_stops_the_run(None, "cpu");
}

#[test]
fn a_nan_stops_the_run_with_the_last_good_weights_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    nan_stops_the_run(Some(gpu), "gpu");
}

#[test]
fn weights_carry_the_layer_list_in_pytorchs_terms() {
    let dir = scratch("torch-layers");
    std::fs::create_dir_all(&dir).unwrap();
    let model = Model::from_sizes(&[6, 5, 4, 3]).unwrap();
    let path = dir.join("m.safetensors");
    checkpoint::save_weights(&path, &model, &model.init(1), HashMap::new()).unwrap();
    let w = checkpoint::load_weights(&path).unwrap();
    let layers: serde_json::Value = serde_json::from_str(&w.metadata[checkpoint::MODEL_KEY]).unwrap();
    assert_eq!(
        layers,
        serde_json::json!([
            {"layer": "Linear", "in_features": 6, "out_features": 5}, {"layer": "ReLU"},
            {"layer": "Linear", "in_features": 5, "out_features": 4}, {"layer": "ReLU"},
            {"layer": "Linear", "in_features": 4, "out_features": 3}
        ])
    );
    // The n-th module of that list owns the tensors named `n.weight`, `n.bias`.
    let names: Vec<String> = model.tensors().into_iter().map(|t| t.0).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]);
    for (i, l) in layers.as_array().unwrap().iter().enumerate() {
        let has_weights = names.contains(&format!("{i}.weight"));
        assert_eq!(has_weights, l["layer"] == "Linear", "module {i}");
    }
}
