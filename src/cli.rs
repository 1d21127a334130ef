//! The command line's arguments (clap), their checks, and what they turn into: a
//! [`Config`], a [`DataSpec`]. Values that can be checked alone are checked while parsing
//! (a bad one is a usage error that names the flag, see [`usage_error`]); the checks that
//! need the data run in [`TrainArgs::config`].
//!
//! Longer than most files here for a reason: every flag's doc comment is its `--help`
//! text, and each command's arguments are one struct in this file.

use crate::bench::BenchDevice;
use crate::data::augment::Augment;
use crate::data::holdout::ValSize;
use crate::data::normalize::Normalize;
use crate::data::Split;
use crate::engine::DataMode;
use crate::error::{Error, Result};
use crate::gpu::choice::KernelPolicy;
use crate::gpu::context::DeviceKind;
use crate::gpu::net::Precision;
use crate::model::{Model, Shape, Spec};
use crate::optim::{OptimKind, Optimizer, Schedule};
use crate::plot::XAxis;
use crate::run::DataSpec;
use crate::train::{BatchSize, Config};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "wgtrain",
    version,
    about = "Train neural-network classifiers on any GPU through wgpu compute shaders"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Time the standard workloads (see README's benchmark section) on the CPU and/or the GPU.
    Bench(BenchArgs),
    /// Classify samples with saved weights: PNG images (any size, resized to the model's
    /// input), CSV rows, or IDX image files.
    Predict(PredictArgs),
    /// Train the same model from the same initial weights at several learning rates, one
    /// run folder each (<out>/lr-<α>), and compare them: sweep.csv and sweep.svg/png.
    Sweep(Box<SweepArgs>),
    /// The learning-rate range test: one short run with the rate growing every step;
    /// draws the smoothed loss against the rate and suggests a rate.
    LrFind(Box<LrFindArgs>),
    /// Draw a run's figures from its folder (loss and accuracy; with its weights and data
    /// also the confusion matrix and the most confident mistakes), or overlay the training
    /// risk of several runs.
    Plot(PlotArgs),
}

#[derive(Args, Clone)]
pub struct PlotArgs {
    /// Run folders: one redraws its figures, several are overlaid.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The overlay's horizontal axis.
    #[arg(long, value_enum, default_value = "samples")]
    pub x: XAxis,
    /// The overlay's file, without extension (default: overlay-<x> in the current folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct PredictArgs {
    /// A weights file (model.safetensors, best.safetensors) or a run folder holding one.
    pub weights: PathBuf,
    /// PNG images, CSV files (features, optionally after a label) or IDX image files.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Print at most this many predictions per file.
    #[arg(long, default_value_t = 20, allow_negative_numbers = true)]
    pub show: usize,
}

#[derive(Args, Clone)]
pub struct BenchArgs {
    /// Which kernel computes each matrix product (see `train --help`).
    #[arg(long, value_enum)]
    pub kernels: Option<KernelPolicy>,
    /// The GPU's precision (see `train --help`; the CPU computes in f32). With --gemm:
    /// mixed times the f16 variants of each product.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Devices to time.
    #[arg(long, value_enum, default_value = "cpu,gpu", value_delimiter = ',')]
    pub devices: Vec<BenchDevice>,
    /// Workloads: small, wide, cnn (the --model cnn preset), sweep (small at several batch sizes), or a name from the sweep.
    #[arg(long, default_value = "small,wide", value_delimiter = ',')]
    pub workloads: Vec<String>,
    /// Timed steps per workload (after the warm-up).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true, value_parser = at_least_one)]
    pub steps: usize,
    #[arg(long, default_value_t = 5, allow_negative_numbers = true)]
    pub warmup: usize,
    /// Adapter name substring (default: WGTRAIN_ADAPTER).
    #[arg(long)]
    pub adapter: Option<String>,
    /// GPU data path: resident (upload once) or streaming (upload each batch).
    #[arg(long, value_enum, default_value = "resident")]
    pub data_mode: DataMode,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead: time every GPU kernel variant of each layer's matrix products.
    #[arg(long)]
    pub gemm: bool,
    /// Instead: time the convolution kernels on the `cnn` preset's shapes, next to the
    /// matrix product an im2col path would run.
    #[arg(long, conflicts_with = "gemm")]
    pub conv: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// auto: a hardware GPU if there is one, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceKind,
    /// Adapter name substring (default: WGTRAIN_ADAPTER).
    #[arg(long)]
    pub adapter: Option<String>,
    /// GPU data path: resident (upload once) or streaming (upload each batch).
    #[arg(long, value_enum, default_value = "resident")]
    pub data_mode: DataMode,
    /// Which kernel computes each matrix product: auto (also spelt measured) times the
    /// variants of each product on the adapter once and caches the choice, keeping the
    /// fixed rule's kernel unless another takes at most 85 % of its time; fixed takes the
    /// fixed rule (default: WGTRAIN_KERNELS, else auto). Every choice gives the same numbers.
    #[arg(long, value_enum)]
    pub kernels: Option<KernelPolicy>,
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// A directory of IDX files (MNIST layout) or a CSV file (label first).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A CSV test file (for CSV data; without it 20% of --data is held out).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Number of classes (default: from the labels; at most 65536).
    #[arg(long, allow_negative_numbers = true, value_parser = class_count)]
    pub classes: Option<usize>,
    /// CSV field separator: one ASCII character such as `;`, or `tab` (default: `,`).
    #[arg(long, value_parser = delimiter)]
    pub delimiter: Option<char>,
}

#[derive(Args, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// The network: `mlp` (Linear/ReLU layers of --hidden), `cnn` (two convolutions with
    /// ReLU and 2×2 max-pooling, then 128 hidden units), or a layer list separated by
    /// commas: linear:N, relu, conv:OUT:K[:sS][:pP] (K×K kernel, stride S, zero padding
    /// P), pool:K (K×K max-pooling, stride K), flatten, dropout:P; it ends in `linear`,
    /// sized to the classes. Example: conv:16:5:p2,relu,pool:2,flatten,linear:64,relu,linear
    #[arg(long, default_value = "mlp", value_parser = model_spec)]
    pub model: String,
    /// Hidden layer widths of `--model mlp`, comma separated.
    #[arg(long, default_value = "256,128", value_delimiter = ',', allow_negative_numbers = true, value_parser = at_least_one)]
    pub hidden: Vec<usize>,
    /// Augment the training images each epoch: `flip` (left–right, half of them), `shift:N`
    /// (translate by up to N pixels each way, zero fill), both (`flip,shift:2`), or
    /// `none`. Default: none (the cnn preset: flip,shift:1).
    #[arg(long, value_parser = Augment::parse)]
    pub augment: Option<Augment>,
    /// Read CSV rows as images of C,H,W (C·H·W must be the row's feature count), for
    /// convolutions; without it CSV rows are flat. IDX images are always [1, H, W].
    #[arg(long, value_parser = crate::model::parse_input_shape)]
    pub input: Option<Shape>,
    /// Passes over the training set. Default: 20, or more on a small data set, so that a
    /// run takes at least 500 steps (iris's 120 rows at batch 128: 500 epochs).
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Samples per step: a number (1 = pure SGD) or `full` (batch gradient descent).
    /// Default: 128 (the cnn preset: 64).
    #[arg(long, allow_negative_numbers = true, value_parser = batch_size)]
    pub batch: Option<BatchSize>,
    /// Base learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true, value_parser = positive)]
    pub lr: f32,
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimKind,
    /// f32, or mixed: the matrix products (fully connected layers, im2col convolutions)
    /// read f16 copies of their inputs and weights, accumulating in f32 (weights, gradients
    /// and every other op stay f32). GPU only, on adapters with SHADER_F16.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Momentum coefficient μ (momentum, nesterov).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true, value_parser = unit_interval)]
    pub momentum: f32,
    /// Weight decay λ (default: 0, AdamW 0.01).
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative)]
    pub weight_decay: Option<f32>,
    /// constant, step:EVERY:GAMMA, exp:GAMMA, cosine[:WARMUP[:MIN_LR]], plateau[:val][:PATIENCE[:FACTOR[:MIN_LR]]]
    /// (plateau watches the training risk, plateau:val the validation loss).
    #[arg(long, default_value = "cosine", allow_negative_numbers = true, value_parser = Schedule::parse)]
    pub schedule: Schedule,
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    pub seed: u64,
    /// Run folder (default: the next free runs/run-NNN). A folder that holds a run is
    /// refused: continue it with --resume, or replace it with --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run in --out.
    #[arg(long)]
    pub force: bool,
    /// Steps per logging interval (default: about ten per epoch).
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one)]
    pub log_every: Option<usize>,
    /// Stop when the validation loss has not improved for this many epochs.
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one)]
    pub early_stop: Option<usize>,
    /// Train on only the first N training samples.
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// Hold out N samples (or a FRACTION) of the training set, stratified by class, for
    /// validation: the best checkpoint, --early-stop and plateau:val look only at them.
    /// Default: a tenth of the training set, at most 5000; 0 trains on everything.
    #[arg(long, value_parser = ValSize::parse)]
    pub val: Option<ValSize>,
    /// Feature scaling fitted on the training set: standard (mean 0, deviation 1; per
    /// column for CSV, over all pixels for images) or none. Default: standard for CSV
    /// data, none for images (pixels are x/255).
    #[arg(long, value_enum)]
    pub normalize: Option<Normalize>,
    /// Continue the run in this folder exactly where its last checkpoint left it (its
    /// configuration and data are the run's; only --device, --adapter, --data-mode,
    /// --checkpoint-every and --stop-after may be given with it).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Also checkpoint every N steps (at the next logging boundary); every epoch always.
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one_step)]
    pub checkpoint_every: Option<u64>,
    /// Stop after N steps in all (with a checkpoint), as Ctrl-C does.
    #[arg(long, allow_negative_numbers = true, value_parser = at_least_one_step)]
    pub stop_after: Option<u64>,
    /// Data parallel in one process: split each batch into N shares, compute each share's
    /// gradient on its own and add them in share order — the same bits as N ranks of
    /// --distributed.
    #[arg(long, default_value_t = 1, allow_negative_numbers = true, value_parser = at_least_one)]
    pub shards: usize,
    /// Data parallel over MPI: each rank computes its share of every batch (run under
    /// mpirun; needs a build with `--features mpi`). README: "Past one machine".
    #[arg(long, conflicts_with = "shards")]
    pub distributed: bool,
}

/// `wgtrain sweep`: every `train` flag, with `--lr` a list of rates.
#[derive(Args, Clone)]
#[command(mut_arg("lr", |a| a.long("base-lr").hide(true)))]
pub struct SweepArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The learning rates: a comma list (0.001,0.01,0.1,1) or a log range A..B:N, N rates
    /// from A to B evenly spaced in log α, rounded to 3 significant digits (1e-3..1:7).
    /// Every other flag applies to every run; --out is the sweep's folder (default: the
    /// next free runs/sweep-NNN), each run in <out>/lr-<α>.
    #[arg(long = "lr", id = "lrs", value_name = "RATES", required = true, value_parser = parse_lrs)]
    pub lrs: LrList,
}

/// `wgtrain lr-find`: the model, data and optimizer flags of `train`, and the range.
#[derive(Args, Clone)]
#[command(mut_arg("lr", |a| a.long("base-lr").hide(true)))]
pub struct LrFindArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The first learning rate.
    #[arg(long, default_value_t = 1e-7, allow_negative_numbers = true, value_parser = positive)]
    pub start: f32,
    /// The last learning rate (reached at --steps unless the loss blows up first).
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true, value_parser = positive)]
    pub end: f32,
    /// Mini-batches in the scan (at most).
    #[arg(long, default_value_t = 100, allow_negative_numbers = true, value_parser = at_least_three)]
    pub steps: usize,
}

#[derive(Args, Clone)]
pub struct EvalArgs {
    /// A weights file (model.safetensors) or a run folder holding one.
    pub weights: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub dev: DeviceArgs,
}

/// Epochs when `--epochs` is not given, unless a run would then take fewer than
/// [`MIN_STEPS`] steps.
const DEFAULT_EPOCHS: usize = 20;
/// Samples per step without `--batch`.
const DEFAULT_BATCH: usize = 128;
/// The cnn preset's training defaults (README: its run on Fashion-MNIST, and the
/// recipes tried on the way): flips and 1-pixel shifts, batches of 64, 12 epochs.
const CNN_AUGMENT: Augment = Augment { flip: true, shift: 1 };
const CNN_BATCH: usize = 64;
const CNN_EPOCHS: usize = 12;
/// The fewest steps a run takes by default: small data sets get more epochs.
const MIN_STEPS: usize = 500;

/// The largest mini-batch (one workgroup row per sample in the input gather).
const MAX_BATCH: usize = 65535;
/// The most parameters a network may have on the host (4 GiB of f32; ×4 with gradients
/// and Adam's moments).
const HOST_PARAMS: usize = 1 << 30;

impl TrainArgs {
    /// `wgtrain`'s own defaults (for the no-subcommand case).
    pub fn defaults() -> Self {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            a: TrainArgs,
        }
        Wrap::parse_from(["wgtrain"]).a
    }

    /// The data these arguments name (the vendored Fashion-MNIST by default).
    pub fn data_spec(&self) -> DataSpec {
        let input = self.input.map(|s| s.dims());
        DataSpec { limit: self.limit, val: self.val, normalize: self.normalize, input, ..self.data.spec(self.seed) }
    }

    /// The run's configuration for the training set of `split`.
    pub fn config(&self, split: &Split) -> Result<Config> {
        if split.val.rows == 0 {
            if let Some(n) = self.early_stop {
                return Err(Error::invalid("--early-stop", n, "a validation set to watch (not with --val 0)"));
            }
            if self.schedule.watches_val() {
                let s = self.schedule;
                return Err(Error::invalid("--schedule", s, "a validation set to watch (not with --val 0)"));
            }
        }
        let classes = split.train.classes;
        let mut optimizer = Optimizer::new(self.optimizer, self.lr);
        optimizer.momentum = self.momentum;
        if let Some(wd) = self.weight_decay {
            optimizer.weight_decay = wd;
        }
        let spec = Spec::parse(&self.model, &self.hidden).map_err(|e| Error::invalid("--model", &self.model, e))?;
        let model = spec.build(split.train.shape, classes)?;
        if model.param_count() > HOST_PARAMS {
            return Err(Error::invalid(
                if self.model == "mlp" { "--hidden" } else { "--model" },
                format!("`{}` ({} parameters)", model.spec(), model.param_count()),
                "a network of at most 2^30 parameters",
            ));
        }
        let cnn = self.model == "cnn";
        let batch = self.batch.unwrap_or(BatchSize::Mini(if cnn { CNN_BATCH } else { DEFAULT_BATCH }));
        let steps = match batch {
            BatchSize::Mini(b) => split.train.rows.div_ceil(b),
            BatchSize::Full => 1,
        };
        let augment = self.augment.unwrap_or(if cnn { CNN_AUGMENT } else { Augment::default() });
        if !augment.is_none() && !matches!(model.input, Shape::Image { .. }) {
            let expected =
                format!("image samples [C, H, W], not {} (CSV rows are flat unless --input C,H,W)", model.input);
            return Err(Error::invalid("--augment", augment, expected));
        }
        Ok(Config {
            model,
            augment,
            epochs: self.epochs.unwrap_or_else(|| {
                let base = if cnn { CNN_EPOCHS } else { DEFAULT_EPOCHS };
                base.max(MIN_STEPS.div_ceil(steps))
            }),
            batch,
            optimizer,
            schedule: self.schedule,
            seed: self.seed,
            log_every: self.log_every.unwrap_or((steps / 10).max(1)),
            early_stop: self.early_stop,
            precision: self.precision,
        })
    }
}

impl DataArgs {
    /// The data these arguments name, split with `seed` (CSV without a test file).
    pub fn spec(&self, seed: u64) -> DataSpec {
        DataSpec {
            data: self.data.clone().unwrap_or_else(default_data),
            test: self.test.clone(),
            classes: self.classes,
            delimiter: self.delimiter,
            limit: None,
            seed,
            val: None,
            normalize: None,
            input: None,
            content_hash: None,
        }
    }
}

/// The vendored Fashion-MNIST: `data/fashion-mnist` here, or in the source tree.
pub fn default_data() -> PathBuf {
    let local = PathBuf::from("data/fashion-mnist");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/fashion-mnist")
}

/// `784-256-128-10` for an MLP, else the layer list.
pub fn model_str(m: &Model) -> String {
    match m.mlp_sizes() {
        Some(s) => s.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("-"),
        None => m.spec(),
    }
}

/// `--model`: a preset or a layer list that parses.
fn model_spec(s: &str) -> std::result::Result<String, String> {
    Spec::parse(s, &[]).map(|_| s.trim().to_string())
}

/// The flags that may accompany `--resume`: they change where and how long the run goes
/// on, not what it computes.
const RESUME_FLAGS: [&str; 9] =
    ["resume", "device", "adapter", "data_mode", "kernels", "checkpoint_every", "stop_after", "shards", "distributed"];

/// With `--resume`, the flags given on the command line (`train`'s matches) that would
/// change the run, refused as a usage error naming each.
pub fn check_resume_flags(m: &clap::ArgMatches) -> std::result::Result<(), String> {
    use clap::parser::ValueSource;
    let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
    if !given("resume") {
        return Ok(());
    }
    let cli = <Cli as clap::CommandFactory>::command();
    let train = cli.find_subcommand("train").expect("train is a subcommand");
    let changing: Vec<String> = train
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .filter(|id| given(id) && !RESUME_FLAGS.contains(id))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if changing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "error: --resume continues the run as it was recorded; {} would change it (with --resume only \
         --device, --adapter, --data-mode, --kernels, --checkpoint-every, --stop-after, --shards and --distributed \
         apply)",
        changing.join(", ")
    ))
}

/// A usage error as one line: `--flag: VALUE is invalid: expected …` where clap knows the
/// flag and the value, else clap's own first line.
pub fn usage_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let get = |k| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => Some(v.join(", ")),
        _ => None,
    };
    let flag = get(ContextKind::InvalidArg).map(|a| a.split([' ', '=']).next().unwrap_or_default().to_string());
    match (flag, get(ContextKind::InvalidValue)) {
        (Some(flag), Some(value)) => {
            let expected = match get(ContextKind::ValidValue) {
                Some(valid) => format!("expected {valid}"),
                None => std::error::Error::source(e).map_or_else(|| "expected another value".into(), |s| s.to_string()),
            };
            format!("error: {flag}: {value} is invalid: {expected}")
        }
        _ => e.to_string().lines().next().unwrap_or("error: bad arguments").to_string(),
    }
}

fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    s.parse::<usize>().ok().filter(|&v| v >= 1).ok_or_else(|| "expected a whole number ≥ 1".into())
}

fn at_least_three(s: &str) -> std::result::Result<usize, String> {
    s.parse::<usize>().ok().filter(|&v| v >= 3).ok_or_else(|| "expected a whole number ≥ 3".into())
}

fn at_least_one_step(s: &str) -> std::result::Result<u64, String> {
    s.parse::<u64>().ok().filter(|&v| v >= 1).ok_or_else(|| "expected at least 1 step".into())
}

fn class_count(s: &str) -> std::result::Result<usize, String> {
    let max = crate::data::MAX_CLASSES;
    s.parse::<usize>()
        .ok()
        .filter(|v| (2..=max).contains(v))
        .ok_or_else(|| format!("expected a whole number from 2 to {max}"))
}

/// One ASCII character that cannot occur inside a number or a quoted field (`tab` and
/// `\t` name the tab).
fn delimiter(s: &str) -> std::result::Result<char, String> {
    let c = match s {
        "tab" | "\\t" => '\t',
        _ => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => c,
                _ => return Err("expected a single ASCII character such as `;`, or `tab`".into()),
            }
        }
    };
    if !c.is_ascii() || c.is_ascii_alphanumeric() || "\"\r\n.+-".contains(c) {
        return Err(
            "expected a single ASCII character other than a letter, digit, quote, `.`, `+`, `-` or line break".into()
        );
    }
    Ok(c)
}

/// Checks between flags that clap cannot express; `Err` is the one-line usage error.
pub fn check(cli: &Cli) -> std::result::Result<(), String> {
    let parallel = match &cli.command {
        Some(Command::Sweep(a)) => Some(("sweep", &a.train)),
        Some(Command::LrFind(a)) => Some(("lr-find", &a.train)),
        _ => None,
    };
    if let Some((cmd, a)) = parallel.filter(|(_, a)| a.shards > 1 || a.distributed) {
        let flag = if a.distributed { "--distributed" } else { "--shards" };
        return Err(format!("error: {flag} is invalid for `{cmd}`: expected it with `wgtrain train` only"));
    }
    if matches!(&cli.command, Some(Command::Train(a)) if a.distributed) && !cfg!(feature = "mpi") {
        return Err("error: --distributed: this wgtrain was built without MPI; expected a build with \
                    `cargo build --release --features mpi` (README: Past one machine)"
            .into());
    }
    let (device, adapter) = match &cli.command {
        Some(Command::Train(a)) => (Some(a.dev.device), a.dev.adapter.as_deref()),
        Some(Command::Eval(a)) => (Some(a.dev.device), a.dev.adapter.as_deref()),
        Some(Command::Sweep(a)) => (Some(a.train.dev.device), a.train.dev.adapter.as_deref()),
        Some(Command::LrFind(a)) => (Some(a.train.dev.device), a.train.dev.adapter.as_deref()),
        Some(Command::Bench(a)) if !a.gemm && !a.devices.contains(&BenchDevice::Gpu) => (None, a.adapter.as_deref()),
        _ => return Ok(()),
    };
    match (device, adapter) {
        (Some(DeviceKind::Cpu) | None, Some(name)) => Err(format!(
            "error: --adapter: {name} is invalid: expected no --adapter when only the CPU runs (drop it, or use --device gpu)"
        )),
        _ => Ok(()),
    }
}

fn positive(s: &str) -> std::result::Result<f32, String> {
    s.parse::<f32>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| "expected a positive number".into())
}

fn non_negative(s: &str) -> std::result::Result<f32, String> {
    s.parse::<f32>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| "expected a number ≥ 0".into())
}

fn unit_interval(s: &str) -> std::result::Result<f32, String> {
    s.parse::<f32>().ok().filter(|v| (0.0..1.0).contains(v)).ok_or_else(|| "expected a number in [0, 1)".into())
}

fn batch_size(s: &str) -> std::result::Result<BatchSize, String> {
    match s {
        "full" => Ok(BatchSize::Full),
        _ => match s.parse::<usize>() {
            Ok(b) if (1..=MAX_BATCH).contains(&b) => Ok(BatchSize::Mini(b)),
            Ok(b) if b > MAX_BATCH => {
                Err(format!("expected at most {MAX_BATCH} (use `full` for batch gradient descent)"))
            }
            _ => Err("expected a whole number ≥ 1, or `full`".into()),
        },
    }
}

/// The learning rates of `wgtrain sweep --lr`, increasing, without repeats.
#[derive(Clone, Debug, PartialEq)]
pub struct LrList(pub Vec<f32>);

/// Parses the learning rates of `sweep --lr`: a comma list of positive numbers, or
/// `A..B:N`: `N ≥ 2` rates from `A` to `B` evenly spaced in `log α`, each rounded to three
/// significant digits (`1e-3..1:7` is 0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1).
/// Returns them in increasing order, without repeats.
pub fn parse_lrs(s: &str) -> std::result::Result<LrList, String> {
    let positive = |t: &str| {
        t.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0 && (*v as f32).is_normal())
            .ok_or_else(|| format!("{t:?} is not a positive number"))
    };
    let mut lrs: Vec<f32> = if let Some((range, n)) = s.split_once(':') {
        let (a, b) = range.split_once("..").ok_or("expected A..B:N (a log range) or a comma list")?;
        let (a, b) = (positive(a)?, positive(b)?);
        let n: usize = n.trim().parse().ok().filter(|&n| (2..=100).contains(&n)).ok_or("N must be 2 to 100")?;
        if a >= b {
            return Err("a range A..B:N needs A < B".into());
        }
        (0..n).map(|i| round3(a * (b / a).powf(i as f64 / (n - 1) as f64)) as f32).collect()
    } else {
        s.split(',').map(|t| positive(t).map(|v| v as f32)).collect::<std::result::Result<_, _>>()?
    };
    lrs.sort_by(f32::total_cmp);
    lrs.dedup();
    if lrs.is_empty() {
        return Err("expected at least one learning rate".into());
    }
    Ok(LrList(lrs))
}

/// `v` rounded to three significant digits.
fn round3(v: f64) -> f64 {
    let e = v.log10().floor() - 2.0;
    let scale = 10f64.powf(e);
    let r = (v / scale).round() * scale;
    // Print-stable: go through the shortest decimal.
    format!("{r:.3e}").parse().unwrap_or(r)
}
