//! The `wgtrain` command line: train (the default), eval, verify, devices.

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use wgtrain::data::{self, Split};
use wgtrain::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use wgtrain::error::{Error, Result};
use wgtrain::gpu::{context, AdapterChoice, Gpu};
use wgtrain::model::Mlp;
use wgtrain::optim::{OptimKind, Optimizer, Schedule};
use wgtrain::train::{self, BatchSize, Config, Control, EpochRecord, Finish, Observer, RunDir};
use wgtrain::{bench, checkpoint};
use wgtrain::{plot, verify};

#[derive(Parser)]
#[command(name = "wgtrain", version, about = "Train MLP classifiers on any GPU through wgpu compute shaders")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a classifier (the default command).
    Train(Box<TrainArgs>),
    /// Score saved weights on a data set's test split.
    Eval(EvalArgs),
    /// Run every op on the CPU and the GPU over the test shapes, plus a gradient check.
    Verify {
        /// Adapter name substring (default: WGTRAIN_ADAPTER, else the best adapter).
        #[arg(long)]
        adapter: Option<String>,
    },
    /// List the adapters wgpu sees and their main limits.
    Devices,
    /// Time the standard workloads (BENCHMARKS.md) on the CPU and/or the GPU.
    Bench(BenchArgs),
    /// Classify samples with saved weights: PNG images (any size, resized to the model's
    /// input), CSV rows, or IDX image files.
    Predict(PredictArgs),
    /// Draw a run's figures from its folder (loss and accuracy; with its weights and data
    /// also the confusion matrix and the most confident mistakes), or overlay the training
    /// risk of several runs.
    Plot(PlotArgs),
}

#[derive(Args, Clone)]
struct PlotArgs {
    /// Run folders: one redraws its figures, several are overlaid.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The overlay's horizontal axis: step, samples or seconds.
    #[arg(long, default_value = "samples")]
    x: String,
    /// The overlay's file, without extension (default: overlay-<x> in the current folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct PredictArgs {
    /// A weights file (model.safetensors, best.safetensors) or a run folder holding one.
    weights: PathBuf,
    /// PNG images, CSV files (features, optionally after a label) or IDX image files.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Print at most this many predictions per file.
    #[arg(long, default_value_t = 20)]
    show: usize,
}

#[derive(Args, Clone)]
struct BenchArgs {
    /// Devices to time: cpu, gpu, or both.
    #[arg(long, default_value = "cpu,gpu", value_delimiter = ',')]
    devices: Vec<String>,
    /// Workloads: small, wide, sweep (small at several batch sizes), or a name from the sweep.
    #[arg(long, default_value = "small,wide", value_delimiter = ',')]
    workloads: Vec<String>,
    /// Timed steps per workload (after the warm-up).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Adapter name substring (default: WGTRAIN_ADAPTER).
    #[arg(long)]
    adapter: Option<String>,
    #[arg(long, default_value = "resident")]
    data_mode: String,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Instead: time every GPU kernel variant of each layer's matrix products.
    #[arg(long)]
    gemm: bool,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args, Clone)]
struct DeviceArgs {
    /// auto (a hardware GPU if there is one, else the CPU), gpu, or cpu.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Adapter name substring (default: WGTRAIN_ADAPTER).
    #[arg(long)]
    adapter: Option<String>,
    /// GPU data path: resident (upload once) or streaming (upload each batch).
    #[arg(long, default_value = "resident")]
    data_mode: String,
}

#[derive(Args, Clone)]
struct DataArgs {
    /// A directory of IDX files (MNIST layout) or a CSV file (label first).
    #[arg(long)]
    data: Option<PathBuf>,
    /// A CSV test file (for CSV data; without it 20% of --data is held out).
    #[arg(long)]
    test: Option<PathBuf>,
    /// Number of classes (default: from the labels).
    #[arg(long)]
    classes: Option<usize>,
}

#[derive(Args, Clone)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    dev: DeviceArgs,
    /// Hidden layer widths, comma separated.
    #[arg(long, default_value = "256,128", value_delimiter = ',')]
    hidden: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Samples per step: a number (1 = pure SGD) or `full` (batch gradient descent).
    #[arg(long, default_value = "128")]
    batch: String,
    /// Base learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
    lr: f32,
    /// sgd, momentum, nesterov, adam, adamw.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Momentum coefficient μ (momentum, nesterov).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    momentum: f32,
    /// Weight decay λ (default: 0, AdamW 0.01).
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f32>,
    /// constant, step:EVERY:GAMMA, exp:GAMMA, cosine[:WARMUP[:MIN_LR]], plateau[:PATIENCE[:FACTOR[:MIN_LR]]].
    #[arg(long, default_value = "cosine")]
    schedule: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run folder (default: the next free runs/run-NNN).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Steps per logging interval (default: about ten per epoch).
    #[arg(long)]
    log_every: Option<usize>,
    /// Stop when the test loss has not improved for this many epochs.
    #[arg(long)]
    early_stop: Option<usize>,
    /// Train on only the first N training samples.
    #[arg(long)]
    limit: Option<usize>,
    /// Continue the run in this folder exactly where its last checkpoint left it (its
    /// configuration and data are the run's; --device and --adapter still apply).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Also checkpoint every N steps (at the next logging boundary); every epoch always.
    #[arg(long)]
    checkpoint_every: Option<u64>,
    /// Stop after N steps in all (with a checkpoint), as Ctrl-C does.
    #[arg(long)]
    stop_after: Option<u64>,
}

#[derive(Args, Clone)]
struct EvalArgs {
    /// A weights file (model.safetensors) or a run folder holding one.
    weights: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    dev: DeviceArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => train_cmd(TrainArgs::parse_from(["wgtrain"])).map(|_| true),
        Some(Command::Train(a)) => train_cmd(*a).map(|_| true),
        Some(Command::Eval(a)) => eval_cmd(a).map(|_| true),
        Some(Command::Verify { adapter }) => run_verify(adapter),
        Some(Command::Devices) => {
            devices();
            Ok(true)
        }
        Some(Command::Bench(a)) => bench_cmd(a).map(|_| true),
        Some(Command::Predict(a)) => predict_cmd(a).map(|_| true),
        Some(Command::Plot(a)) => plot_cmd(a).map(|_| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

impl TrainArgs {
    /// Reads `wgtrain`'s own CLI defaults (for the no-subcommand case).
    fn parse_from<'a>(args: impl IntoIterator<Item = &'a str>) -> Self {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            a: TrainArgs,
        }
        Wrap::parse_from(args).a
    }
}

/// The vendored Fashion-MNIST: `data/fashion-mnist` here, or in the source tree.
fn default_data() -> PathBuf {
    let local = PathBuf::from("data/fashion-mnist");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

fn load_data(a: &DataArgs, seed: u64) -> Result<Split> {
    let path = a.data.clone().unwrap_or_else(default_data);
    if a.classes == Some(0) || a.classes == Some(1) {
        return Err(Error::invalid("--classes", a.classes.unwrap(), "at least 2"));
    }
    data::load(&path, a.test.as_deref(), a.classes, seed)
}

fn positive(flag: &str, v: f32) -> Result<f32> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::invalid(flag, v, "a positive number"))
    }
}

fn build_config(a: &TrainArgs, split: &Split) -> Result<Config> {
    let batch = match a.batch.as_str() {
        "full" => BatchSize::Full,
        s => match s.parse::<usize>() {
            Ok(b) if b >= 1 => BatchSize::Mini(b),
            _ => return Err(Error::invalid("--batch", s, "a whole number ≥ 1, or `full`")),
        },
    };
    if let BatchSize::Mini(b) = batch {
        if b > 65535 {
            return Err(Error::invalid("--batch", b, "at most 65535 (use `full` for batch gradient descent)"));
        }
    }
    if a.epochs == 0 {
        return Err(Error::invalid("--epochs", 0, "at least 1"));
    }
    if a.hidden.contains(&0) {
        return Err(Error::invalid("--hidden", format!("{:?}", a.hidden), "widths ≥ 1"));
    }
    let kind = OptimKind::parse(&a.optimizer)
        .ok_or_else(|| Error::invalid("--optimizer", &a.optimizer, "sgd, momentum, nesterov, adam or adamw"))?;
    let mut optimizer = Optimizer::new(kind, positive("--lr", a.lr)?);
    optimizer.momentum = a.momentum;
    if !(0.0..1.0).contains(&a.momentum) {
        return Err(Error::invalid("--momentum", a.momentum, "a number in [0, 1)"));
    }
    if let Some(wd) = a.weight_decay {
        if !(wd.is_finite() && wd >= 0.0) {
            return Err(Error::invalid("--weight-decay", wd, "a number ≥ 0"));
        }
        optimizer.weight_decay = wd;
    }
    let schedule = Schedule::parse(&a.schedule).map_err(|e| Error::invalid("--schedule", &a.schedule, &e))?;
    let mut sizes = vec![split.train.width];
    sizes.extend(&a.hidden);
    sizes.push(split.train.classes);
    let steps = match batch {
        BatchSize::Mini(b) => split.train.rows.div_ceil(b),
        BatchSize::Full => 1,
    };
    if a.log_every == Some(0) {
        return Err(Error::invalid("--log-every", 0, "at least 1"));
    }
    Ok(Config {
        sizes,
        epochs: a.epochs,
        batch,
        optimizer,
        schedule,
        seed: a.seed,
        log_every: a.log_every.unwrap_or((steps / 10).max(1)),
        early_stop: a.early_stop,
    })
}

/// The device `--device` asks for: `None` for the CPU, else the GPU to open.
fn pick_device(d: &DeviceArgs) -> Result<Option<Gpu>> {
    let mut choice = AdapterChoice::any();
    if d.adapter.is_some() {
        choice.name.clone_from(&d.adapter);
    }
    match d.device.as_str() {
        "cpu" => Ok(None),
        "gpu" => Gpu::new(&choice).map(Some),
        "auto" => {
            if choice.name.is_some() {
                return Gpu::new(&choice).map(Some);
            }
            let hardware = context::list_adapters().into_iter().find(|a| !context::is_software(&a.get_info()));
            match hardware {
                Some(a) => {
                    let gpu = Gpu::open(a)?;
                    eprintln!("device: {} (a hardware GPU)", gpu.describe());
                    Ok(Some(gpu))
                }
                None => {
                    eprintln!(
                        "device: CPU — no hardware GPU found, and a software adapter (llvmpipe) is many \
                         times slower than the CPU path; use --device gpu to train on it anyway"
                    );
                    Ok(None)
                }
            }
        }
        other => Err(Error::invalid("--device", other, "auto, gpu or cpu")),
    }
}

fn data_mode(d: &DeviceArgs) -> Result<DataMode> {
    match d.data_mode.as_str() {
        "resident" => Ok(DataMode::Resident),
        "streaming" => Ok(DataMode::Streaming),
        other => Err(Error::invalid("--data-mode", other, "resident or streaming")),
    }
}

/// What data a run trained on, stored with it so `--resume` and `eval` find it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DataSpec {
    data: PathBuf,
    test: Option<PathBuf>,
    classes: Option<usize>,
    limit: Option<usize>,
    seed: u64,
}

impl DataSpec {
    fn load(&self) -> Result<Split> {
        if self.classes.is_some_and(|c| c < 2) {
            return Err(Error::invalid("--classes", self.classes.unwrap_or(0), "at least 2"));
        }
        let mut split = data::load(&self.data, self.test.as_deref(), self.classes, self.seed)?;
        if let Some(n) = self.limit {
            if n == 0 {
                return Err(Error::invalid("--limit", 0, "at least 1 sample"));
            }
            split.train = split.train.head(n);
        }
        Ok(split)
    }
}

/// Set by Ctrl-C; the trainer finishes its step, checkpoints and stops. A second Ctrl-C
/// exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn train_cmd(a: TrainArgs) -> Result<()> {
    let mode = data_mode(&a.dev)?;
    if a.checkpoint_every == Some(0) || a.stop_after == Some(0) {
        return Err(Error::invalid("--checkpoint-every/--stop-after", 0, "at least 1 step"));
    }
    let resume = a.resume.as_deref().map(train::load_resume).transpose()?;
    let spec = match &resume {
        Some(r) => serde_json::from_str::<DataSpec>(r.metadata.get("wgtrain.data").map_or("", String::as_str))
            .map_err(|e| {
                Error::format(a.resume.as_deref().unwrap_or(Path::new(".")), format!("metadata `wgtrain.data`: {e}"))
            })?,
        None => DataSpec {
            data: a.data.data.clone().unwrap_or_else(default_data),
            test: a.data.test.clone(),
            classes: a.data.classes,
            limit: a.limit,
            seed: a.seed,
        },
    };
    let split = spec.load()?;
    let cfg = match &resume {
        Some(r) => r.config.clone(),
        None => build_config(&a, &split)?,
    };
    if cfg.sizes[0] != split.train.width || *cfg.sizes.last().unwrap_or(&0) != split.train.classes {
        return Err(Error::format(
            &spec.data,
            format!(
                "the data has {} features and {} classes, the run's network is {}",
                split.train.width,
                split.train.classes,
                sizes_str(&cfg.sizes)
            ),
        ));
    }
    let mlp = Mlp::new(cfg.sizes.clone())?;
    let gpu = pick_device(&a.dev)?;
    check_model_size(&mlp, &gpu, cfg.max_batch())?;
    let params = resume.as_ref().map_or_else(|| mlp.init(cfg.seed), |r| r.params.clone());
    let mut engine: Box<dyn Engine> = match &gpu {
        Some(g) => {
            let mode = if mode == DataMode::Resident && g.check_binding("data", train_bytes(&split)).is_err() {
                eprintln!("the training set does not fit one binding on this adapter: streaming it");
                DataMode::Streaming
            } else {
                mode
            };
            Box::new(GpuEngine::new(g, &mlp, &params, cfg.optimizer.kind, cfg.max_batch(), &split.train, mode)?)
        }
        None => Box::new(CpuEngine::new(&mlp, params, cfg.optimizer.kind, cfg.max_batch())),
    };
    let device = engine.describe();
    let mut meta = HashMap::new();
    meta.insert("wgtrain.classes".into(), serde_json::to_string(&split.class_names).expect("names serialise"));
    meta.insert("wgtrain.data".into(), serde_json::to_string(&spec).expect("spec serialises"));
    meta.insert("wgtrain.device".into(), device.clone());
    let (mut run, progress) = match resume {
        Some(r) => {
            engine.set_state(&r.params, &r.optim_state)?;
            let dir = a.resume.clone().expect("resuming");
            if r.metadata.get("wgtrain.device") != Some(&device) {
                eprintln!(
                    "note: this run was trained on {}; resuming on {device} continues it, but not bit for bit",
                    r.metadata.get("wgtrain.device").map_or("an unknown device", String::as_str)
                );
            }
            let step = r.progress.checkpoint_step.unwrap_or(0);
            println!(
                "resuming {} at step {step} (epoch {}, batch {})",
                dir.display(),
                r.progress.epoch + 1,
                r.progress.batch
            );
            (RunDir::reopen(&dir, step, meta)?, Some(r.progress))
        }
        None => {
            let cfg_json = serde_json::json!({
                "config": cfg,
                "data": spec,
                "train_samples": split.train.rows,
                "test_samples": split.test.rows,
                "classes": split.class_names,
                "device": device,
            });
            (RunDir::create(a.out.as_deref(), &cfg_json, meta)?, None)
        }
    };
    println!(
        "training {} on {} ({} train / {} test samples) with {} on {device}",
        sizes_str(&cfg.sizes),
        spec.data.display(),
        split.train.rows,
        split.test.rows,
        describe_opt(&cfg),
    );
    println!("run folder: {}", run.path.display());
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)");
    });
    let ctl = Control { checkpoint_every: a.checkpoint_every, stop_after: a.stop_after, interrupt: Some(&INTERRUPTED) };
    let mut ui = Ui::new();
    let out = train::train(&cfg, &split, engine.as_mut(), Some(&mut run), &mut ui, progress, &ctl);
    ui.finish();
    let out = out?;
    summary(&out.epochs);
    match out.finish {
        Finish::Interrupted(step) => {
            println!("stopped after step {step}; checkpoint in {}", run.path.display());
            println!("resume with: wgtrain train --resume {}", run.path.display());
            if INTERRUPTED.load(Ordering::SeqCst) {
                std::process::exit(130);
            }
        }
        Finish::StoppedEarly | Finish::Completed => {
            println!("weights: {} (best test loss: best.safetensors)", run.path.join("model.safetensors").display());
            // A figure that cannot be drawn must not fail a finished run.
            match engine.predict(&split.test).and_then(|probs| test_figures(&run.path, &split, &probs)) {
                Ok(files) => println!("figures: {}", files_str(&files)),
                Err(e) => eprintln!("note: the figures were not drawn: {e}"),
            }
        }
    }
    Ok(())
}

/// Prints the test set's confusion matrix and writes every figure of the run.
fn test_figures(run: &Path, split: &Split, probs: &[f32]) -> Result<Vec<PathBuf>> {
    let m = plot::confusion(&split.test.labels, probs, split.class_names.len())?;
    print!("\n{}", plot::confusion_table(&m, &split.class_names));
    plot::write_run_figures(run, &split.test, probs, &split.class_names)
}

fn files_str(files: &[PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn plot_cmd(a: PlotArgs) -> Result<()> {
    let x = plot::XAxis::parse(&a.x)?;
    let files = match a.runs.as_slice() {
        [run] => redraw_run(run)?,
        runs => plot::plot_overlay(runs, x, a.out.as_deref().unwrap_or(Path::new(x.stem())))?,
    };
    println!("figures: {}", files_str(&files));
    Ok(())
}

/// A run's figures from its folder: the learning curves, and, when its weights and the
/// data named in its config.json load, the test set's confusion matrix and mistakes
/// (predicted on the CPU).
fn redraw_run(run: &Path) -> Result<Vec<PathBuf>> {
    let weights = run.join("model.safetensors");
    let cfg_path = run.join("config.json");
    let spec = std::fs::read_to_string(&cfg_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value::<DataSpec>(v["data"].clone()).ok());
    let Some(spec) = spec.filter(|_| weights.is_file()) else {
        eprintln!("note: no weights or no data description in {}: drawing the learning curves only", run.display());
        return plot::plot_run(run);
    };
    let split = spec.load()?;
    let w = checkpoint::load_weights(&weights)?;
    if split.test.width != w.mlp.inputs() {
        return Err(Error::format(
            &weights,
            format!("the model takes {} features, the run's data has {}", w.mlp.inputs(), split.test.width),
        ));
    }
    let probs = CpuEngine::new(&w.mlp, w.params, OptimKind::Sgd, train::CHUNK).predict(&split.test)?;
    test_figures(run, &split, &probs)
}

/// Refuses, before allocating, a model too large for the adapter or for host memory.
fn check_model_size(mlp: &Mlp, gpu: &Option<Gpu>, max_batch: usize) -> Result<()> {
    const HOST_LIMIT: usize = 1 << 30; // parameters (4 GiB of f32, ×4 with gradients and Adam)
    if mlp.param_count() > HOST_LIMIT {
        return Err(Error::invalid(
            "--hidden",
            format!("{} ({} parameters)", sizes_str(&mlp.sizes), mlp.param_count()),
            "a network of at most 2^30 parameters",
        ));
    }
    match gpu {
        Some(g) => wgtrain::gpu::net::GpuNet::check_fits(g, mlp, max_batch),
        None => Ok(()),
    }
}

fn train_bytes(split: &Split) -> u64 {
    match &split.train.features {
        data::FeatureData::U8(v) => v.len() as u64,
        data::FeatureData::F32(v) => 4 * v.len() as u64,
    }
}

fn sizes_str(s: &[usize]) -> String {
    s.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("-")
}

fn describe_opt(cfg: &Config) -> String {
    let b = match cfg.batch {
        BatchSize::Mini(b) => format!("batch {b}"),
        BatchSize::Full => "full batch".into(),
    };
    format!("{} lr {} ({:?}), {b}, {} epochs", cfg.optimizer.kind.name(), cfg.optimizer.lr, cfg.schedule, cfg.epochs)
}

fn summary(epochs: &[EpochRecord]) {
    println!(
        "\n{:>5} {:>10} {:>9} {:>10} {:>9} {:>10} {:>8}",
        "epoch", "train loss", "train acc", "test loss", "test acc", "lr", "time s"
    );
    for r in epochs {
        println!(
            "{:>5} {:>10.4} {:>9.4} {:>10.4} {:>9.4} {:>10.3e} {:>8.1}",
            r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc, r.lr, r.elapsed_s
        );
    }
}

/// Progress: a bar per epoch on a terminal, plain lines otherwise.
struct Ui {
    bar: Option<ProgressBar>,
    tty: bool,
    loss: Option<f64>,
}

impl Ui {
    fn new() -> Self {
        Ui { bar: None, tty: std::io::stdout().is_terminal(), loss: None }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Ui {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if self.tty {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} steps {msg} ETA {eta}")
                    .expect("valid template"),
            );
            bar.set_prefix(format!("{}/{epochs}", epoch + 1));
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, done: usize, running_loss: Option<f64>, samples_per_s: f64) {
        if running_loss.is_some() {
            self.loss = running_loss;
        }
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            let loss = self.loss.map_or(String::new(), |l| format!("loss {l:.4} "));
            b.set_message(format!("{loss}{samples_per_s:.0} samples/s"));
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        self.finish();
        println!(
            "epoch {:>3}: train loss {:.4} acc {:.4} | test loss {:.4} acc {:.4} | lr {:.2e} | {:.0} samples/s, {:.1} s",
            r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc, r.lr, r.samples_per_s, r.epoch_seconds
        );
    }

    fn note(&mut self, msg: &str) {
        println!("{msg}");
    }
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let path = if a.weights.is_dir() { a.weights.join("model.safetensors") } else { a.weights.clone() };
    let w = checkpoint::load_weights(&path)?;
    let split = load_data(&a.data, 1)?;
    if split.test.width != w.mlp.inputs() {
        return Err(Error::format(
            &split.test.source,
            format!(
                "samples have {} features, the model in {} takes {}",
                split.test.width,
                path.display(),
                w.mlp.inputs()
            ),
        ));
    }
    split.test.check_labels(w.mlp.classes())?;
    let gpu = pick_device(&a.dev)?;
    let kind = OptimKind::Sgd;
    let mut engine: Box<dyn Engine> = match &gpu {
        Some(g) => {
            Box::new(GpuEngine::new(g, &w.mlp, &w.params, kind, train::CHUNK, &split.test, DataMode::Streaming)?)
        }
        None => Box::new(CpuEngine::new(&w.mlp, w.params.clone(), kind, train::CHUNK)),
    };
    let t = engine.evaluate(&split.test)?;
    println!(
        "{} on {} ({} samples, {}): loss {:.4}, accuracy {:.4}",
        path.display(),
        split.test.source.display(),
        t.samples,
        engine.describe(),
        t.loss(),
        t.accuracy()
    );
    Ok(())
}

fn devices() {
    let all = context::list_adapters();
    if all.is_empty() {
        println!("no adapters found (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    for a in all {
        let info = a.get_info();
        let l = a.limits();
        println!("{}", context::describe(&info));
        println!(
            "    max binding {} MiB, max buffer {} MiB, {} storage buffers/stage, {} KiB workgroup memory, \
             {} invocations/workgroup, timestamps: {}",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY)
        );
    }
}

fn run_verify(adapter: Option<String>) -> Result<bool> {
    let mut choice = AdapterChoice::any();
    if adapter.is_some() {
        choice.name = adapter;
    }
    let gpu = Gpu::new(&choice)?;
    println!("adapter: {}", gpu.describe());
    let t = std::time::Instant::now();
    let outcomes = verify::all(&gpu, |what| eprintln!("checking {what} …"))?;
    print!("{}", verify::table(&outcomes));
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.pass).collect();
    for o in failed.iter().take(5) {
        print!("{}", o.report());
    }
    println!("{} checks, {} failed, {:.1} s", outcomes.len(), failed.len(), t.elapsed().as_secs_f64());
    Ok(failed.is_empty())
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    let split = load_data(&a.data, 1)?;
    let all = bench::workloads(true);
    let mut chosen = Vec::new();
    for name in &a.workloads {
        let found: Vec<_> = match name.as_str() {
            "sweep" => all.iter().filter(|w| w.name.starts_with("small-")).cloned().collect(),
            n => all.iter().filter(|w| w.name == n).cloned().collect(),
        };
        if found.is_empty() {
            let names: Vec<_> = all.iter().map(|w| w.name.as_str()).collect();
            return Err(Error::invalid("--workloads", name, &format!("sweep or one of {}", names.join(", "))));
        }
        chosen.extend(found);
    }
    if a.steps == 0 {
        return Err(Error::invalid("--steps", 0, "at least 1"));
    }
    if a.gemm {
        let mut choice = AdapterChoice::any();
        if a.adapter.is_some() {
            choice.name.clone_from(&a.adapter);
        }
        let gpu = Gpu::new(&choice)?;
        println!("GPU: {}", gpu.describe());
        for w in &chosen {
            for t in bench::gemm_variants(&gpu, &w.sizes, w.batch, a.steps)? {
                if a.json {
                    println!("{}", serde_json::to_string(&t).expect("serialises"));
                } else {
                    println!(
                        "{:<8} {:<28} {:<11} M={:<5} N={:<5} K={:<5} {:>7.2} GFLOP/s {:>8.3} ms  error/bound {:.2}",
                        w.name, t.product, t.variant, t.m, t.n, t.k, t.gflops, t.ms, t.error_ratio
                    );
                }
            }
        }
        return Ok(());
    }
    let mode = data_mode(&DeviceArgs { device: "gpu".into(), adapter: None, data_mode: a.data_mode.clone() })?;
    let mut gpu = None;
    let mut results = Vec::new();
    for dev in &a.devices {
        for w in &chosen {
            let mut sizes = w.sizes.clone();
            sizes[0] = split.train.width;
            *sizes.last_mut().unwrap() = split.train.classes;
            let mlp = Mlp::new(sizes)?;
            let params = mlp.init(1);
            let mut m = match dev.as_str() {
                "cpu" => {
                    let mut e = CpuEngine::new(&mlp, params, OptimKind::Sgd, w.batch);
                    bench::measure(&mut e, &split.train, w, a.warmup, a.steps)?
                }
                "gpu" => {
                    if gpu.is_none() {
                        let mut choice = AdapterChoice::any();
                        if a.adapter.is_some() {
                            choice.name.clone_from(&a.adapter);
                        }
                        gpu = Some(Gpu::new(&choice)?);
                    }
                    let g = gpu.as_ref().expect("opened");
                    let mut e = GpuEngine::new(g, &mlp, &params, OptimKind::Sgd, w.batch, &split.train, mode)?;
                    let mut m = bench::measure(&mut e, &split.train, w, a.warmup, a.steps)?;
                    bench::profile(&mut e, &split.train, w, &mut m)?;
                    m
                }
                other => return Err(Error::invalid("--devices", other, "cpu or gpu")),
            };
            m.device = format!("{dev}: {}", m.device);
            if a.json {
                println!("{}", serde_json::to_string(&m).expect("serialises"));
            } else {
                let mem =
                    m.memory_bytes.map_or(String::new(), |b| format!("  {:.1} MiB on device", b as f64 / 1048576.0));
                println!(
                    "{:<12} {:<5} batch {:>5}: {:>9.0} samples/s {:>8.2} ms/step {:>7.2} GFLOP/s  first step {:>6.0} ms{mem}",
                    m.workload, dev, m.batch, m.samples_per_s, m.ms_per_step, m.gflops, m.first_step_ms
                );
                println!(
                    "{:<12}       per step: host gather {:.3} ms (overlapped), record+submit {:.3} ms, final wait {:.3} ms",
                    "", m.host_gather_ms, m.submit_ms, m.wait_ms
                );
            }
            results.push(m);
        }
    }
    if !a.json {
        if let Some(g) = &gpu {
            println!("GPU: {}", g.describe());
        }
        for m in results.iter().filter(|m| m.device.starts_with("gpu")) {
            if m.kernels.is_none() {
                println!("\n{}: this adapter has no timestamp queries; see the wall-time split above", m.workload);
            }
            if let Some(k) = &m.kernels {
                let total: f64 = k.iter().map(|(_, t)| t).sum();
                println!("\nper-kernel GPU time, {} (one step, {:.2} ms in kernels):", m.workload, total);
                for (name, t) in k {
                    println!("  {name:<34} {t:>8.3} ms {:>5.1}%", 100.0 * t / total);
                }
            }
        }
    }
    Ok(())
}

/// Reads one `predict` input into rows of `width` features in the model's scale.
fn predict_rows(path: &Path, width: usize) -> Result<Vec<f32>> {
    let name = path.to_string_lossy().to_lowercase();
    if name.ends_with(".png") {
        let side = (width as f64).sqrt().round() as usize;
        if side * side != width {
            return Err(Error::format(path, format!("the model takes {width} features, not a square image")));
        }
        return data::image::load_png(path, side);
    }
    if name.ends_with(".csv") {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // Rows of features alone are read by giving each a dummy label.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let cols = first.split(',').count();
        let d = if cols == width {
            let labelled: String =
                text.lines().map(|l| if l.trim().is_empty() { "\n".into() } else { format!("0,{l}\n") }).collect();
            data::csv::parse(path, &labelled)?
        } else {
            data::csv::parse(path, &text)?
        };
        if d.width != width {
            return Err(Error::format(path, format!("{} features per row, the model takes {width}", d.width)));
        }
        let mut x = vec![0.0; d.rows * width];
        (0..d.rows).for_each(|i| d.row_f32(i, &mut x[i * width..(i + 1) * width]));
        return Ok(x);
    }
    let a = data::idx::read(path)?;
    let w: usize = a.dims[1..].iter().product();
    if a.dims.len() < 2 || w != width {
        return Err(Error::format(
            path,
            format!("IDX dimensions {:?}; the model takes {width} values per sample", a.dims),
        ));
    }
    Ok(a.data.iter().map(|&b| f32::from(b) * (1.0 / 255.0)).collect())
}

fn predict_cmd(a: PredictArgs) -> Result<()> {
    let path = if a.weights.is_dir() { a.weights.join("model.safetensors") } else { a.weights.clone() };
    let w = checkpoint::load_weights(&path)?;
    let names: Vec<String> = w
        .metadata
        .get("wgtrain.classes")
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| (0..w.mlp.classes()).map(|c| format!("class {c}")).collect());
    let (d, c) = (w.mlp.inputs(), w.mlp.classes());
    for input in &a.inputs {
        let x = predict_rows(input, d)?;
        let rows = x.len() / d;
        let mut ws = wgtrain::cpu::net::Workspace::new(&w.mlp, rows);
        wgtrain::cpu::net::forward(&w.mlp, &w.params, &x, rows, &mut ws, wgtrain::cpu::net::Kernels::Fast);
        let mut p = vec![0.0f32; rows * c];
        wgtrain::cpu::ops::softmax(&ws.acts[ws.acts.len() - 1][..rows * c], &mut p, rows, c);
        for (i, row) in p.chunks(c).enumerate().take(a.show) {
            let (best, prob) =
                row.iter().enumerate().fold((0, f32::MIN), |b, (j, &v)| if v > b.1 { (j, v) } else { b });
            let at = if rows > 1 { format!("[{i}]") } else { String::new() };
            println!("{}{at}: {} ({prob:.3})", input.display(), names.get(best).map_or("?", String::as_str));
        }
        if rows > a.show {
            println!("{}: … {} more (use --show)", input.display(), rows - a.show);
        }
    }
    Ok(())
}
