//! The `wgtrain` command line: parses the arguments ([`wgtrain::cli`]), calls the library
//! for each command, and prints. Exit status: 0 done, 1 an error (one line), 2 a usage
//! error, 130 interrupted by Ctrl-C (with a checkpoint to resume from).

use clap::{CommandFactory, FromArgMatches};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use wgtrain::bench::{self, BenchDevice};
use wgtrain::cli::{self, BenchArgs, Cli, Command, EvalArgs, LrFindArgs, PlotArgs, PredictArgs, SweepArgs, TrainArgs};
use wgtrain::data::Split;
use wgtrain::engine::{self, DataMode};
use wgtrain::error::{Error, Result};
use wgtrain::gpu::net::Precision;
use wgtrain::gpu::{context, Gpu};
use wgtrain::model::Shape;
use wgtrain::optim::OptimKind;
use wgtrain::parallel::{self, agree, Collective, Failure, Sharded};
use wgtrain::predict::Predictor;
use wgtrain::progress::{self, Ui};
use wgtrain::run::{self, RunDir};
use wgtrain::train::{self, Control, Finish};
use wgtrain::{checkpoint, lrfind, plot, sweep, verify};

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
        None => return train_exit(TrainArgs::defaults()),
        Some(Command::Train(a)) => return train_exit(*a),
        Some(Command::Eval(a)) => eval_cmd(a),
        Some(Command::Verify { adapter }) => verify_cmd(adapter.as_deref()),
        Some(Command::Devices) => {
            print!("{}", context::adapters_report());
            Ok(true)
        }
        Some(Command::Bench(a)) => bench_cmd(a).map(|_| true),
        Some(Command::Predict(a)) => predict_cmd(a).map(|_| true),
        Some(Command::Plot(a)) => plot_cmd(a).map(|_| true),
        Some(Command::Sweep(a)) => sweep_cmd(*a).map(|_| true),
        Some(Command::LrFind(a)) => lr_find_cmd(*a).map(|_| true),
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
/// Under MPI: set on every rank at the step after which any rank saw Ctrl-C, so all stop
/// at the same step ([`Sharded::agree_on_stop`]).
static STOP_AGREED: AtomicBool = AtomicBool::new(false);

/// `train`'s exit status; prints its error.
fn train_exit(a: TrainArgs) -> ExitCode {
    #[cfg(feature = "mpi")]
    if a.distributed {
        return match wgtrain::parallel::mpi::Mpi::init() {
            Ok(mpi) => report(train_cmd(a, Some(&mpi))),
            Err(e) => report(Err(e.into())),
        };
    }
    report(train_cmd(a, None))
}

fn report(r: std::result::Result<ExitCode, Failure>) -> ExitCode {
    r.unwrap_or_else(|f| {
        if f.print {
            eprintln!("error: {}", f.error);
        }
        ExitCode::FAILURE
    })
}

/// Trains a new run, or continues one (`--resume`); data parallel with `--shards` or
/// (`comm`) over MPI, where rank 0 alone writes the run folder and prints.
fn train_cmd(a: TrainArgs, comm: Option<&dyn Collective>) -> std::result::Result<ExitCode, Failure> {
    let root = comm.is_none_or(|c| c.rank() == 0);
    let shards = comm.map_or(a.shards, |c| c.size());
    let loaded = agree(comm, load_run(&a, shards))?;
    let (resume, spec, split, cfg) = loaded;
    let model = cfg.model.clone();
    let local = comm.map_or(0, |c| c.local_rank());
    let (mut gpu, why) = agree(comm, Gpu::choose_nth(a.dev.device, a.dev.adapter.as_deref(), local))?;
    if let Some(g) = gpu.as_mut() {
        g.set_kernels(a.dev.kernels);
    }
    if let (Some(why), true) = (why, root) {
        eprintln!("{why}");
    }
    let (kind, rows) = (cfg.optimizer.kind, cfg.max_batch());
    let mut cost = None;
    let opened = engine::check_memory(gpu.is_some(), &model, kind, rows, &split.train).and_then(|_| {
        let params = resume.as_ref().map_or_else(|| model.init(cfg.seed), |r| r.params.clone());
        let inner =
            engine::open(gpu.as_ref(), &model, params, kind, rows, &split.train, a.dev.data_mode, cfg.precision)?;
        let mut engine: Box<dyn engine::Engine + '_> = match (shards, comm) {
            (1, None) => inner,
            _ => {
                let mut sharded = Sharded::new(inner, shards, comm)?;
                if comm.is_some() {
                    sharded.agree_on_stop(&INTERRUPTED, &STOP_AGREED);
                }
                cost = Some(sharded.cost());
                Box::new(sharded)
            }
        };
        if let Some(r) = &resume {
            engine.set_state(&r.params, &r.optim_state)?;
        }
        Ok(engine)
    });
    let mut engine = agree(comm, opened)?;
    let mut same_devices = true;
    if let Some(c) = comm {
        // The same starting weights everywhere (seed, model, checkpoint), and whether every
        // rank computes on the same kind of device — else their optimizer steps may round
        // apart, and the weights agree only up to rounding.
        let start = agree(comm, engine.params())?;
        let when = "before training (a different checkpoint, seed or model on some rank)";
        parallel::same_weights(c, &start, when).map_err(|error| Failure { error, print: root })?;
        let here = gpu.as_ref().map_or_else(|| "the CPU".to_string(), Gpu::describe);
        (same_devices, _) = parallel::same_everywhere(c, wgtrain::rng::fnv1a(here.bytes()))?;
        if !same_devices && root {
            eprintln!("note: the ranks train on different devices (rank 0: {here}); their weights may round apart");
        }
    }
    let device = engine.describe();
    let folder = match (&resume, root) {
        (_, false) => Ok(None),
        (Some(r), true) => RunDir::reopen(r, &split, &device).map(Some),
        (None, true) => RunDir::create(a.out.as_deref(), a.force, &cfg, &spec, &split, &device).map(Some),
    };
    let mut run = agree(comm, folder)?;
    if let (Some(r), true) = (&resume, root) {
        if r.device.as_deref() != Some(device.as_str()) {
            let was = r.device.as_deref().unwrap_or("an unknown device");
            eprintln!("note: this run was trained on {was}; resuming on {device} continues it, but not bit for bit");
        }
        let (step, epoch, batch) = (r.progress.checkpoint_step.unwrap_or(0), r.progress.epoch + 1, r.progress.batch);
        println!("resuming {} at step {step} (epoch {epoch}, batch {batch})", r.dir.display());
    }
    let progress = resume.map(|r| r.progress);
    if let Some(run) = &run {
        let (ntrain, nval, ntest) = (split.train.rows, split.val.rows, split.test.rows);
        let net = cli::model_str(&cfg.model);
        let (data, how) = (spec.data.display(), cfg.describe());
        let counts = format!("{ntrain} train / {nval} validation / {ntest} test samples");
        println!("training {net} on {data} ({counts}) with {how} on {device}");
        if cfg.model.mlp_sizes().is_none() {
            // Layer by layer: position, layer, output shape, parameters.
            cfg.model.summary().iter().for_each(|l| println!("{l}"));
        }
        println!("run folder: {}", run.path.display());
    }
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)");
    });
    let ctl = Control {
        checkpoint_every: a.checkpoint_every,
        stop_after: a.stop_after,
        interrupt: Some(if comm.is_some() { &STOP_AGREED } else { &INTERRUPTED }),
        ..Control::default()
    };
    let mut ui = Ui::default();
    let out = match run.as_mut() {
        Some(run) => {
            let mut live = plot::LiveFigures::new(&mut ui, &run.path);
            let journal: &mut dyn train::Journal = run;
            train::train(&cfg, &split, engine.as_mut(), Some(journal), &mut live, progress, &ctl)
        }
        None => train::train(&cfg, &split, engine.as_mut(), None, &mut train::Quiet, progress, &ctl),
    };
    ui.finish();
    let out = match (out, comm) {
        (Ok(out), _) => out,
        // Every rank meets a non-finite loss at the same step; anything else this rank alone.
        (Err(error @ Error::NonFinite { .. }), Some(_)) => return Err(Failure { error, print: root }),
        (Err(e), Some(c)) => {
            eprintln!("error (rank {}): {e}", c.rank());
            c.abort(1)
        }
        (Err(e), None) => return Err(e.into()),
    };
    if let (Some(g), Some(run)) = (&gpu, &run) {
        // Which kernel each matrix product ran (`gpu::choice`); a record, never fatal.
        if let Err(e) = wgtrain::files::write_atomic(&run.path.join(run::KERNELS_FILE), g.choices.to_json().as_bytes())
        {
            eprintln!("note: {e}");
        }
    }
    if let Some(c) = comm {
        match (parallel::same_weights(c, &out.params, "after training"), same_devices) {
            (Ok(f), _) if root => println!("weights identical on all {} ranks (fingerprint {f:016x})", c.size()),
            (Ok(_), _) => {}
            (Err(e), false) if root => eprintln!("note: {e}, as ranks on different devices may"),
            (Err(_), false) => {}
            (Err(error), true) => return Err(Failure { error, print: root }),
        }
    }
    if let (Some(cost), true) = (cost, root) {
        let (c, mb) = (cost.get(), model.param_count() as f64 * 4e-6);
        println!("combining the {shards} shares: {} ({} steps; a gradient is {mb:.2} MB)", c.per_step(), c.steps);
    }
    // Ctrl-C's status, the same on every rank (all stopped at the agreed step).
    let stopped = INTERRUPTED.load(Ordering::SeqCst) || STOP_AGREED.load(Ordering::SeqCst);
    let interrupted = matches!(out.finish, Finish::Interrupted(_)) && stopped;
    let status = if interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS };
    let Some(run) = run else { return Ok(status) };
    print!("{}", progress::summary(&out.epochs));
    if let Finish::Interrupted(step) = out.finish {
        println!("stopped after step {step}; checkpoint in {}", run.path.display());
        println!("resume with: wgtrain train --resume {}", run.path.display());
        return Ok(status);
    }
    let best = if split.val.rows > 0 { run::BEST_FILE } else { "none: no validation set" };
    println!("weights: {} (best validation loss: {best})", run.path.join(run::MODEL_FILE).display());
    if let Some(g) = &gpu {
        println!("{} ({})", g.choices.summary(), run::KERNELS_FILE);
    }
    // A figure that cannot be drawn must not fail a finished run.
    let figures = engine.predict(&split.test).and_then(|probs| {
        let weights = (&cfg.model, out.params.as_slice());
        plot::test_figures(&run.path, &split, &probs, weights)
    });
    match figures {
        Ok((table, files)) => {
            print!("\n{table}");
            println!("figures: {}", files_str(&files));
        }
        Err(e) => eprintln!("note: the figures were not drawn: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The run `train` starts or resumes: the checkpoint, the data's description, the data
/// and the configuration, checked against each other (the global batch against the
/// number of shares too).
fn load_run(a: &TrainArgs, shards: usize) -> Result<(Option<run::Resume>, run::DataSpec, Split, train::Config)> {
    let resume = a.resume.as_deref().map(run::load_resume).transpose()?;
    let mut spec = resume.as_ref().map_or_else(|| a.data_spec(), |r| r.data.clone());
    let split = spec.load()?;
    let cfg = match &resume {
        Some(r) => r.config.clone(),
        None => a.config(&split)?,
    };
    let model = &cfg.model;
    let image_mismatch = matches!(model.input, Shape::Image { .. }) && model.input != split.train.shape;
    if model.inputs() != split.train.width || model.classes() != split.train.classes || image_mismatch {
        let (s, c) = (split.train.shape, split.train.classes);
        let what = format!(
            "the data has samples of {s} and {c} classes, the run's network takes {} and gives {} classes",
            model.input,
            model.classes()
        );
        return Err(Error::format(&spec.data, what));
    }
    if let train::BatchSize::Mini(b) = cfg.batch {
        if b < shards {
            let flag = if a.distributed { "the number of ranks" } else { "--shards" };
            return Err(Error::invalid("--batch", b, format!("a global batch of at least {flag} ({shards})")));
        }
    }
    Ok((resume, spec, split, cfg))
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
    if split.test.width != w.model.inputs() {
        let (have, takes) = (split.test.width, w.model.inputs());
        let what = format!("samples have {have} features, the model in {} takes {takes}", path.display());
        return Err(Error::format(&split.test.source, what));
    }
    split.test.check_labels(w.model.classes())?;
    let (mut gpu, _) = Gpu::choose(a.dev.device, a.dev.adapter.as_deref())?;
    if let Some(g) = gpu.as_mut() {
        g.set_kernels(a.dev.kernels);
    }
    let (sgd, chunk) = (OptimKind::Sgd, train::CHUNK);
    let mut engine =
        engine::open(gpu.as_ref(), &w.model, w.params, sgd, chunk, &split.test, DataMode::Streaming, Precision::F32)?;
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
    if a.conv {
        let gpu = Gpu::named(a.adapter.as_deref())?;
        println!("GPU: {}", gpu.describe());
        for t in bench::conv_kernels(&gpu, a.steps.min(20))? {
            println!("{}", if a.json { serde_json::to_string(&t).expect("serialises") } else { bench::conv_row(&t) });
        }
        return Ok(());
    }
    if a.gemm {
        let gpu = Gpu::named(a.adapter.as_deref())?;
        println!("GPU: {}", gpu.describe());
        for w in &chosen {
            for t in bench::gemm_variants(&gpu, &w.model(&split.train)?, w.batch, a.precision, a.steps)? {
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
                BenchDevice::Gpu if gpu.is_none() => {
                    let mut g = Gpu::named(a.adapter.as_deref())?;
                    g.set_kernels(a.kernels);
                    Some(&*gpu.insert(g))
                }
                BenchDevice::Gpu => gpu.as_ref(),
            };
            let m = bench::run(g, w, &split.train, a.data_mode, a.precision, a.warmup, a.steps)?;
            println!("{}", if a.json { serde_json::to_string(&m).expect("serialises") } else { bench::row(&m) });
            results.push(m);
        }
    }
    if !a.json {
        if let Some(g) = &gpu {
            println!("GPU: {}", g.describe());
            println!("{}", g.choices.summary());
        }
        print!("{}", bench::profiles(&results));
    }
    Ok(())
}

fn predict_cmd(a: PredictArgs) -> Result<()> {
    let mut p = Predictor::open(&weights_path(&a.weights))?;
    for input in &a.inputs {
        let rows = p.classify(input)?;
        let at = |i: usize| if rows.len() > 1 { format!("[{i}]") } else { String::new() };
        for (i, (name, prob)) in rows.iter().enumerate().take(a.show) {
            println!("{}{}: {name} ({prob:.3})", input.display(), at(i));
        }
        if rows.len() > a.show {
            println!("{}: … {} more (use --show)", input.display(), rows.len() - a.show);
        }
    }
    Ok(())
}

fn sweep_cmd(a: SweepArgs) -> Result<()> {
    let mut ui = Ui::default();
    let out = sweep::sweep(&a.train, &a.lrs.0, &mut ui, &mut |line| println!("{line}"));
    ui.finish();
    let s = out?;
    print!("\n{}", sweep::table(&s));
    println!("figures and table: {}", files_str(&s.files));
    Ok(())
}

fn lr_find_cmd(a: LrFindArgs) -> Result<()> {
    let t = std::time::Instant::now();
    let setup = sweep::Setup::new(&a.train, &mut |line| eprintln!("{line}"))?;
    let range = lrfind::Range { start: a.start, end: a.end, steps: a.steps };
    println!("{}", lrfind::describe(&setup.cfg, &range));
    let r = lrfind::lr_find(&setup, &a.train, range)?;
    let out = a.train.out.clone().unwrap_or_else(|| {
        (1..).map(|i| PathBuf::from(format!("runs/lr-find-{i:03}"))).find(|p| !p.exists()).expect("a free name")
    });
    let files = lrfind::write(&r, &out)?;
    print!("{}", lrfind::report(&r));
    println!("figure and table: {} ({:.1} s)", files_str(&files), t.elapsed().as_secs_f64());
    Ok(())
}
