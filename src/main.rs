//! The `wgtrain` command line: parses the arguments ([`wgtrain::cli`]), calls the library
//! for each command, and prints. Exit status: 0 done, 1 an error (one line), 2 a usage
//! error, 130 interrupted by Ctrl-C (with a checkpoint to resume from).

use clap::{CommandFactory, FromArgMatches};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use wgtrain::bench::{self, BenchDevice};
use wgtrain::cli::{self, BenchArgs, Cli, Command, EvalArgs, PlotArgs, PredictArgs, TrainArgs};
use wgtrain::data::{predict, FeatureData};
use wgtrain::engine::{self, DataMode};
use wgtrain::error::{Error, Result};
use wgtrain::gpu::{context, Gpu};
use wgtrain::model::Mlp;
use wgtrain::optim::OptimKind;
use wgtrain::progress::{self, Ui};
use wgtrain::run::{self, RunDir};
use wgtrain::train::{self, Control, Finish};
use wgtrain::{checkpoint, plot, verify};

fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", cli::usage_error(&e));
            return ExitCode::from(2);
        }
    };
    if let Err(line) = cli::check(&cli) {
        eprintln!("{line}");
        return ExitCode::from(2);
    }
    if let Some(Err(e)) = matches.subcommand_matches("train").map(cli::check_resume_flags) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        None => train_cmd(TrainArgs::defaults()),
        Some(Command::Train(a)) => train_cmd(*a),
        Some(Command::Eval(a)) => eval_cmd(a),
        Some(Command::Verify { adapter }) => verify_cmd(adapter.as_deref()),
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

/// Set by Ctrl-C; the trainer finishes its step, checkpoints and stops. A second Ctrl-C
/// exits at once.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Trains a new run, or continues one (`--resume`); returns whether it completed.
fn train_cmd(a: TrainArgs) -> Result<bool> {
    let resume = a.resume.as_deref().map(run::load_resume).transpose()?;
    let mut spec = resume.as_ref().map_or_else(|| a.data_spec(), |r| r.data.clone());
    let split = spec.load()?;
    let cfg = match &resume {
        Some(r) => r.config.clone(),
        None => a.config(&split)?,
    };
    if cfg.sizes[0] != split.train.width || cfg.sizes.last() != Some(&split.train.classes) {
        let (w, c) = (split.train.width, split.train.classes);
        let what =
            format!("the data has {w} features and {c} classes, the run's network is {}", cli::sizes_str(&cfg.sizes));
        return Err(Error::format(&spec.data, what));
    }
    let mlp = Mlp::new(cfg.sizes.clone())?;
    let (gpu, why) = Gpu::choose(a.dev.device, a.dev.adapter.as_deref())?;
    if let Some(why) = why {
        eprintln!("{why}");
    }
    let (kind, rows) = (cfg.optimizer.kind, cfg.max_batch());
    engine::check_memory(gpu.is_some(), &mlp, kind, rows, &split.train)?;
    let params = resume.as_ref().map_or_else(|| mlp.init(cfg.seed), |r| r.params.clone());
    let mut engine = engine::open(gpu.as_ref(), &mlp, params, kind, rows, &split.train, a.dev.data_mode)?;
    let device = engine.describe();
    let (mut run, progress) = match resume {
        Some(r) => {
            engine.set_state(&r.params, &r.optim_state)?;
            if r.device.as_deref() != Some(device.as_str()) {
                let was = r.device.as_deref().unwrap_or("an unknown device");
                eprintln!(
                    "note: this run was trained on {was}; resuming on {device} continues it, but not bit for bit"
                );
            }
            let dir = RunDir::reopen(&r, &split, &device)?;
            let (step, epoch, batch) =
                (r.progress.checkpoint_step.unwrap_or(0), r.progress.epoch + 1, r.progress.batch);
            println!("resuming {} at step {step} (epoch {epoch}, batch {batch})", r.dir.display());
            (dir, Some(r.progress))
        }
        None => (RunDir::create(a.out.as_deref(), a.force, &cfg, &spec, &split, &device)?, None),
    };
    let (ntrain, nval, ntest) = (split.train.rows, split.val.rows, split.test.rows);
    let net = cli::sizes_str(&cfg.sizes);
    let (data, how) = (spec.data.display(), cfg.describe());
    let counts = format!("{ntrain} train / {nval} validation / {ntest} test samples");
    println!("training {net} on {data} ({counts}) with {how} on {device}");
    println!("run folder: {}", run.path.display());
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)");
    });
    let ctl = Control {
        checkpoint_every: a.checkpoint_every,
        stop_after: a.stop_after,
        interrupt: Some(&INTERRUPTED),
        ..Control::default()
    };
    let mut ui = Ui::default();
    let mut live = plot::LiveFigures::new(&mut ui, &run.path);
    let out = train::train(&cfg, &split, engine.as_mut(), Some(&mut run), &mut live, progress, &ctl);
    ui.finish();
    let out = out?;
    print!("{}", progress::summary(&out.epochs));
    if let Finish::Interrupted(step) = out.finish {
        println!("stopped after step {step}; checkpoint in {}", run.path.display());
        println!("resume with: wgtrain train --resume {}", run.path.display());
        if INTERRUPTED.load(Ordering::SeqCst) {
            drop(run); // releases the folder's lock
            std::process::exit(130);
        }
        return Ok(true);
    }
    let best = if split.val.rows > 0 { run::BEST_FILE } else { "none: no validation set" };
    println!("weights: {} (best validation loss: {best})", run.path.join(run::MODEL_FILE).display());
    // A figure that cannot be drawn must not fail a finished run.
    match engine.predict(&split.test).and_then(|probs| plot::test_figures(&run.path, &split, &probs)) {
        Ok((table, files)) => {
            print!("\n{table}");
            println!("figures: {}", files_str(&files));
        }
        Err(e) => eprintln!("note: the figures were not drawn: {e}"),
    }
    Ok(true)
}

fn files_str(files: &[PathBuf]) -> String {
    files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// A weights file, or the model file of a run folder.
fn weights_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join(run::MODEL_FILE)
    } else {
        p.to_path_buf()
    }
}

fn plot_cmd(a: PlotArgs) -> Result<()> {
    let files = match a.runs.as_slice() {
        [dir] => {
            let (table, files) = plot::redraw_run(dir)?;
            match table {
                Some(t) => print!("\n{t}"),
                None => eprintln!(
                    "note: no weights or no data description in {}: drawing the learning curves only",
                    dir.display()
                ),
            }
            files
        }
        runs => plot::plot_overlay(runs, a.x, a.out.as_deref().unwrap_or(Path::new(a.x.stem())))?,
    };
    println!("figures: {}", files_str(&files));
    Ok(())
}

fn eval_cmd(a: EvalArgs) -> Result<bool> {
    let path = weights_path(&a.weights);
    let w = checkpoint::load_weights(&path)?;
    let mut split = a.data.spec(1).load_raw()?;
    run::input_transform(&w.metadata, &split.test).apply(&mut split.test);
    if split.test.width != w.mlp.inputs() {
        let (have, takes) = (split.test.width, w.mlp.inputs());
        let what = format!("samples have {have} features, the model in {} takes {takes}", path.display());
        return Err(Error::format(&split.test.source, what));
    }
    split.test.check_labels(w.mlp.classes())?;
    let (gpu, _) = Gpu::choose(a.dev.device, a.dev.adapter.as_deref())?;
    let (sgd, chunk) = (OptimKind::Sgd, train::CHUNK);
    let mut engine = engine::open(gpu.as_ref(), &w.mlp, w.params, sgd, chunk, &split.test, DataMode::Streaming)?;
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
    Ok(true)
}

fn devices() {
    let all = context::list_adapters();
    if all.is_empty() {
        println!("no adapters found (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    for a in all {
        let l = a.limits();
        println!("{}", context::describe(&a.get_info()));
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

/// Runs every parity check; returns whether all passed.
fn verify_cmd(adapter: Option<&str>) -> Result<bool> {
    let gpu = Gpu::named(adapter)?;
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
    let split = a.data.spec(1).load_raw()?;
    let chosen = bench::select(&a.workloads)?;
    if a.gemm {
        let gpu = Gpu::named(a.adapter.as_deref())?;
        println!("GPU: {}", gpu.describe());
        for w in &chosen {
            for t in bench::gemm_variants(&gpu, &w.sizes, w.batch, a.steps)? {
                println!(
                    "{}",
                    if a.json { serde_json::to_string(&t).expect("serialises") } else { bench::gemm_row(&w.name, &t) }
                );
            }
        }
        return Ok(());
    }
    let mut gpu = None;
    let mut results = Vec::new();
    for dev in &a.devices {
        for w in &chosen {
            let g = match dev {
                BenchDevice::Cpu => None,
                BenchDevice::Gpu if gpu.is_none() => Some(&*gpu.insert(Gpu::named(a.adapter.as_deref())?)),
                BenchDevice::Gpu => gpu.as_ref(),
            };
            let m = bench::run(g, w, &split.train, a.data_mode, a.warmup, a.steps)?;
            println!("{}", if a.json { serde_json::to_string(&m).expect("serialises") } else { bench::row(&m) });
            results.push(m);
        }
    }
    if !a.json {
        if let Some(g) = &gpu {
            println!("GPU: {}", g.describe());
        }
        print!("{}", bench::profiles(&results));
    }
    Ok(())
}

fn predict_cmd(a: PredictArgs) -> Result<()> {
    let path = weights_path(&a.weights);
    let w = checkpoint::load_weights(&path)?;
    let names: Vec<String> = w
        .metadata
        .get(run::META_CLASSES)
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| (0..w.mlp.classes()).map(|c| format!("class {c}")).collect());
    let (width, c) = (w.mlp.inputs(), w.mlp.classes());
    let mut engine = engine::CpuEngine::new(&w.mlp, w.params, OptimKind::Sgd, train::CHUNK);
    for input in &a.inputs {
        let mut samples = predict::read(input, width)?;
        // Read in the model's scale (pixels in [0, 1]); then standardized as in training.
        let t = run::input_transform(&w.metadata, &samples);
        if let FeatureData::F32(x) = &mut samples.features {
            t.standardize(x);
        }
        let p = wgtrain::engine::Engine::predict(&mut engine, &samples)?;
        for (i, row) in p.chunks(c).enumerate().take(a.show) {
            let (best, prob) =
                row.iter().enumerate().fold((0, f32::MIN), |b, (j, &v)| if v > b.1 { (j, v) } else { b });
            let at = if samples.rows > 1 { format!("[{i}]") } else { String::new() };
            println!("{}{at}: {} ({prob:.3})", input.display(), names.get(best).map_or("?", String::as_str));
        }
        if samples.rows > a.show {
            println!("{}: … {} more (use --show)", input.display(), samples.rows - a.show);
        }
    }
    Ok(())
}
