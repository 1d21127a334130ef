//! Three classes in the probability simplex. Trains a small MLP on a three-class problem,
//! on the GPU (any adapter, software ones included; the CPU engine when there is none),
//! and after every epoch places each sample's softmax output `p = (p₀, p₁, p₂)` in the
//! triangle whose corners are the classes: barycentric coordinates, coloured by the true
//! class, over the decision regions `P_c = {p : p_c ≥ p_j ∀j}`. Training pulls the points
//! from the centre (uncertain) towards their corners; the ones that cross into another
//! class's region are the mistakes.
//!
//! ```sh
//! cargo run --release --example simplex                        # built-in 2-D spirals
//! cargo run --release --example simplex -- --toy blobs --lr 0.001
//! cargo run --release --example simplex -- --data iris.csv --names setosa,versicolor,virginica
//! ```
//!
//! Writes `simplex-sheet.png/svg` (small multiples of evenly spaced epochs) and
//! `simplex.gif` (every epoch) into `--out` (default `runs/simplex`).

use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use wgtrain::data::batches::{epoch_order, Batch};
use wgtrain::data::{self, Dataset, FeatureData, Split};
use wgtrain::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use wgtrain::error::{Error, Result};
use wgtrain::gpu::net::Precision;
use wgtrain::gpu::{AdapterChoice, Gpu};
use wgtrain::model::Model;
use wgtrain::optim::{OptimKind, Optimizer};
use wgtrain::plot::simplex::{plot_simplex_sheet, simplex_frame_rgb, Points, SimplexFrame};
use wgtrain::rng::Rng;

#[derive(Parser)]
#[command(about = "Watch a three-class MLP's softmax outputs move through the probability simplex")]
struct Args {
    /// A CSV file of a three-class problem (label 0, 1 or 2 first, numeric features after,
    /// e.g. iris); 20% is held out for testing. Default: the built-in 2-D problem.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Class names, comma separated (default: the toy problem's, or class 0, 1, 2).
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// The built-in problem: spirals (three interleaved arms) or blobs (three overlapping
    /// Gaussian clusters, learnt within an epoch or two).
    #[arg(long, default_value = "spirals")]
    toy: String,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 0.005)]
    lr: f32,
    /// Hidden layer widths, comma separated.
    #[arg(long, default_value = "32,32", value_delimiter = ',')]
    hidden: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// gpu (the best adapter, else the CPU with a note) or cpu.
    #[arg(long, default_value = "gpu")]
    device: String,
    #[arg(long, default_value = "runs/simplex")]
    out: PathBuf,
    /// Frames on the sheet of small multiples (evenly spaced epochs, first and last kept).
    #[arg(long, default_value_t = 12)]
    sheet: usize,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<()> {
    if a.epochs == 0 || a.batch == 0 || a.sheet == 0 {
        return Err(Error::invalid("--epochs/--batch/--sheet", 0, "at least 1"));
    }
    let (split, names) = match &a.data {
        Some(path) => csv_problem(path, a.seed, &a.names)?,
        None => toy_problem(&a.toy, a.seed, &a.names)?,
    };
    let model = Model::mlp(split.train.shape, &a.hidden, 3)?;
    let params = model.init(a.seed);
    let opt = Optimizer::new(OptimKind::Adam { decoupled: false }, a.lr);
    let gpu = match a.device.as_str() {
        "gpu" => match Gpu::new(&AdapterChoice::any()) {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("note: {e}; training on the CPU instead");
                None
            }
        },
        "cpu" => None,
        other => return Err(Error::invalid("--device", other, "gpu or cpu")),
    };
    let mut engine: Box<dyn Engine + '_> = match &gpu {
        Some(g) => Box::new(GpuEngine::new(
            g,
            &model,
            &params,
            opt.kind,
            a.batch,
            &split.train,
            DataMode::Resident,
            Precision::F32,
        )?),
        None => Box::new(CpuEngine::new(&model, params, opt.kind, a.batch)),
    };
    println!(
        "{} training / {} test samples, network {}, Adam lr {}, batch {}, on {}",
        split.train.rows,
        split.test.rows,
        model.spec(),
        a.lr,
        a.batch,
        engine.describe()
    );
    let mut frames = vec![snapshot(engine.as_mut(), &split, "initial weights")?];
    let mut step = 0u64;
    for epoch in 0..a.epochs {
        for idx in epoch_order(a.seed, epoch, split.train.rows).chunks(a.batch) {
            step += 1;
            let batch = Batch::gather(&split.train, idx.to_vec(), engine.gather());
            engine.train_step(&batch, &opt.step(step, a.lr))?;
        }
        let t = engine.take_tally()?;
        let frame = snapshot(engine.as_mut(), &split, &format!("epoch {}", epoch + 1))?;
        println!("epoch {:>3}: train loss {:.4} acc {:.4} | {}", epoch + 1, t.loss(), t.accuracy(), frame.title);
        frames.push(frame);
    }
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let picked = spaced(frames.len(), a.sheet);
    let sheet: Vec<SimplexFrame> = picked.iter().map(|&i| frames[i].clone()).collect();
    for f in plot_simplex_sheet(&sheet, &names, 4, &a.out.join("simplex-sheet"))? {
        println!("wrote {}", f.display());
    }
    let gif = a.out.join("simplex.gif");
    write_gif(&frames, &names, &gif)?;
    println!("wrote {}", gif.display());
    Ok(())
}

/// The model's softmax outputs on the training and test samples, titled with `what` and
/// the test accuracy.
fn snapshot(engine: &mut dyn Engine, split: &Split, what: &str) -> Result<SimplexFrame> {
    let train = Points { probs: engine.predict(&split.train)?, labels: split.train.labels.clone() };
    let test = Points { probs: engine.predict(&split.test)?, labels: split.test.labels.clone() };
    let m = wgtrain::plot::confusion(&test.labels, &test.probs, 3)?;
    let acc = wgtrain::plot::confusion::overall_accuracy(&m);
    Ok(SimplexFrame { title: format!("{what}, test accuracy {acc:.3}"), train, test })
}

/// `k` indices spread evenly over `0..n`, first and last included.
fn spaced(n: usize, k: usize) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..k).map(|i| (i * (n - 1) + (k - 1) / 2) / (k - 1).max(1)).collect();
    v.dedup();
    v
}

/// Every frame, half a second each (the last one two seconds), looping, as a GIF.
fn write_gif(frames: &[SimplexFrame], names: &[String], path: &Path) -> Result<()> {
    let fail = |what: String| Error::format(path, what);
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut encoder = None;
    for (i, f) in frames.iter().enumerate() {
        let (rgb, h) = simplex_frame_rgb(f, names, 440)?;
        let w = (rgb.len() / 3 / h as usize) as u16;
        let enc = match &mut encoder {
            Some(e) => e,
            None => {
                let mut e = gif::Encoder::new(std::io::BufWriter::new(&file), w, h as u16, &[])
                    .map_err(|e| fail(format!("starting the GIF failed: {e}")))?;
                e.set_repeat(gif::Repeat::Infinite).map_err(|e| fail(e.to_string()))?;
                encoder.insert(e)
            }
        };
        let mut frame = gif::Frame::from_rgb_speed(w, h as u16, &rgb, 10);
        frame.delay = if i + 1 == frames.len() { 200 } else { 50 };
        enc.write_frame(&frame).map_err(|e| fail(format!("writing frame {i} failed: {e}")))?;
    }
    Ok(())
}

/// A CSV data set with three classes, its features standardised with the training
/// set's mean and standard deviation.
fn csv_problem(path: &Path, seed: u64, names: &[String]) -> Result<(Split, Vec<String>)> {
    let mut split = data::load_csv(path, None, None, seed)?;
    if split.train.classes != 3 {
        return Err(Error::format(path, format!("{} classes; the simplex shows exactly 3", split.train.classes)));
    }
    let (mut train, mut test) = (split.train.clone(), split.test.clone());
    let w = train.width;
    let (FeatureData::F32(tr), FeatureData::F32(te)) = (&mut train.features, &mut test.features) else {
        return Err(Error::format(path, "expected numeric features"));
    };
    for c in 0..w {
        let col = |v: &[f32]| v.iter().skip(c).step_by(w).map(|&x| f64::from(x)).collect::<Vec<_>>();
        let x = col(tr);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt().max(1e-12);
        for v in tr.iter_mut().skip(c).step_by(w).chain(te.iter_mut().skip(c).step_by(w)) {
            *v = ((f64::from(*v) - mean) / sd) as f32;
        }
    }
    split.train = train;
    split.test = test;
    let names = class_names(names, &split.class_names)?;
    Ok((split, names))
}

fn class_names(given: &[String], default: &[String]) -> Result<Vec<String>> {
    match given.len() {
        0 => Ok(default.to_vec()),
        3 => Ok(given.to_vec()),
        n => Err(Error::invalid("--names", given.join(","), format!("three names ({n} given)"))),
    }
}

/// The built-in 2-D problem: 200 training and 100 test samples per class.
fn toy_problem(kind: &str, seed: u64, names: &[String]) -> Result<(Split, Vec<String>)> {
    let mut rng = Rng::new(seed, 7);
    let mut sample = |per_class: usize, source: &str| -> Result<Dataset> {
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for i in 0..per_class * 3 {
            let c = i % 3;
            let arm = c as f64 * 2.0 * std::f64::consts::PI / 3.0;
            let (x, y) = match kind {
                // Centres on a circle, spread so that the clusters overlap a little.
                "blobs" => (arm.cos() + 0.55 * rng.normal(), arm.sin() + 0.55 * rng.normal()),
                // Three arms winding out from the origin.
                "spirals" => {
                    let t = rng.uniform();
                    let angle = arm + 4.0 * t + 0.25 * rng.normal();
                    (t * angle.cos(), t * angle.sin())
                }
                other => return Err(Error::invalid("--toy", other, "blobs or spirals")),
            };
            features.extend([x as f32, y as f32]);
            labels.push(c as u32);
        }
        Ok(Dataset {
            source: PathBuf::from(format!("toy:{kind}:{source}")),
            rows: labels.len(),
            features: FeatureData::F32(features),
            labels,
            width: 2,
            shape: wgtrain::model::Shape::Flat(2),
            classes: 3,
        })
    };
    let train = sample(200, "train")?;
    let test = sample(100, "test")?;
    let default: Vec<String> = ["A", "B", "C"].iter().map(|n| format!("class {n}")).collect();
    Ok((Split::new(train, test, default.clone()), class_names(names, &default)?))
}
