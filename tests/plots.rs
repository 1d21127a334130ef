//! The figures: the series drawn equal the records logged, the confusion matrix counts
//! every sample and agrees with the kernels' accuracy, figures land on disk as valid
//! PNG and SVG with their labels, and bad input gives errors that name the file and line.
//! None of these needs a GPU.

use serde_json::json;
use std::path::{Path, PathBuf};
use wgtrain::cpu::ops;
use wgtrain::data::{Dataset, FeatureData};
use wgtrain::model::{Model, Shape, Spec};
use wgtrain::plot::confusion::{argmax, overall_accuracy, plot_confusion};
use wgtrain::plot::images::{plot_mistakes, Mistake};
use wgtrain::plot::simplex::{
    barycentric, centroid, decision_region, plot_simplex_sheet, simplex_frame_rgb, Points, SimplexFrame, VERTICES,
};
use wgtrain::plot::{
    accuracy_series, confident_mistakes, confusion, confusion_table, loss_series, overlay_series, per_class_accuracy,
    plot_overlay, plot_run, write_run_figures, XAxis,
};
use wgtrain::rng::Rng;
use wgtrain::run::RunLog;

/// A fresh, empty folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-plots-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn interval(epoch: usize, step: u64, loss: f64, lr: f64) -> serde_json::Value {
    json!({"kind": "interval", "epoch": epoch, "step": step, "samples_seen": step * 32, "train_loss": loss,
           "train_acc": 1.0 - loss / 3.0, "lr": lr, "elapsed_s": step as f64 * 0.01})
}

fn epoch(epoch: usize, step: u64, test_loss: f64, test_acc: f64) -> serde_json::Value {
    json!({"kind": "epoch", "epoch": epoch, "step": step, "samples_seen": step * 32, "train_loss": test_loss * 0.9,
           "train_acc": test_acc + 0.02, "test_loss": test_loss, "test_acc": test_acc, "lr": 0.01,
           "epoch_seconds": 1.5, "elapsed_s": epoch as f64 * 1.5, "samples_per_s": 1000.0})
}

/// A run folder with a config.json (sgd, batch 32, lr 0.01) and the given records.
fn write_run(dir: &Path, records: &[serde_json::Value]) {
    // As config.json spells choices since it records them as the CLI does.
    let config = json!({"config": {"batch": 32, "optimizer": {"kind": "sgd", "lr": 0.01}}});
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").expect("metrics");
}

/// Two epochs of four steps, logged every two steps, with a decaying learning rate.
fn two_epochs() -> Vec<serde_json::Value> {
    vec![
        interval(1, 2, 2.1, 0.01),
        interval(1, 4, 1.4, 0.008),
        epoch(1, 4, 1.2, 0.61),
        interval(2, 6, 0.9, 0.006),
        interval(2, 8, 0.7, 0.004),
        epoch(2, 8, 0.8, 0.74),
    ]
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 1000, "{} is only {} bytes", path.display(), bytes.len());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} lacks the PNG signature", path.display());
}

fn svg_text(path: &Path) -> String {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(svg.starts_with("<svg"), "{} does not start with <svg", path.display());
    svg
}

/// The contents of an SVG's `<text>` elements.
fn texts(svg: &str) -> Vec<&str> {
    svg.split("</text>").filter_map(|t| t.rsplit_once('>')).map(|(_, text)| text.trim()).collect()
}

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("kind{i}")).collect()
}

#[test]
fn plotted_series_equal_the_logged_records() {
    let dir = temp_dir("series");
    let mut records = two_epochs();
    // Records of other kinds are skipped; a null (a NaN the trainer logged) is not drawn.
    records.insert(1, json!({"kind": "note", "step": 3}));
    records.push(interval(3, 10, f64::NAN, 0.002));
    write_run(&dir, &records);
    let log = RunLog::read(&dir).expect("log parses");
    assert_eq!(log.intervals.len(), 5);
    assert_eq!(log.epochs.len(), 2);
    assert!(log.intervals[4].train_loss.is_nan());
    assert_eq!(
        log.label,
        "wgtrain-plots-".to_string() + &format!("{}-series (sgd, batch 32, lr 0.01)", std::process::id())
    );

    let loss = loss_series(&log);
    assert_eq!(loss.train, vec![(2.0, 2.1), (4.0, 1.4), (6.0, 0.9), (8.0, 0.7)]);
    assert_eq!(loss.test, vec![(4.0, 1.2), (8.0, 0.8)], "test loss sits at each epoch's final step");
    // The log's learning rate is the f32 the trainer used (the run module reads records
    // into the trainer's own types).
    let lr = |v: f32| f64::from(v);
    assert_eq!(loss.lr, vec![(2.0, lr(0.01)), (4.0, lr(0.008)), (6.0, lr(0.006)), (8.0, lr(0.004)), (10.0, lr(0.002))]);

    let acc = accuracy_series(&log);
    assert_eq!(acc.test, vec![(1.0, 0.61), (2.0, 0.74)]);
    assert_eq!(acc.train, vec![(1.0, 0.63), (2.0, 0.76)]);

    assert_eq!(overlay_series(&log, XAxis::Step), loss.train);
    let samples: Vec<f64> = overlay_series(&log, XAxis::Samples).iter().map(|p| p.0).collect();
    assert_eq!(samples, vec![64.0, 128.0, 192.0, 256.0]);
    let seconds: Vec<f64> = overlay_series(&log, XAxis::Seconds).iter().map(|p| p.0).collect();
    assert_eq!(seconds, vec![0.02, 0.04, 0.06, 0.08]);
}

#[test]
fn run_figures_are_written_with_their_labels() {
    let dir = temp_dir("run");
    write_run(&dir, &two_epochs());
    let files = plot_run(&dir).expect("figures");
    let expect: Vec<PathBuf> =
        ["loss.svg", "loss.png", "accuracy.svg", "accuracy.png"].iter().map(|f| dir.join(f)).collect();
    assert_eq!(files, expect);
    assert_png(&dir.join("loss.png"));
    assert_png(&dir.join("accuracy.png"));
    let loss = svg_text(&dir.join("loss.svg"));
    for label in ["step (parameter updates)", "cross-entropy loss", "learning rate", "test loss", "training risk"] {
        assert!(loss.contains(label), "loss.svg lacks `{label}`");
    }
    let acc = svg_text(&dir.join("accuracy.svg"));
    for label in ["epoch", "accuracy", "test accuracy after the epoch (last 0.7400)"] {
        assert!(acc.contains(label), "accuracy.svg lacks `{label}`");
    }
}

#[test]
fn a_run_without_epochs_gets_only_the_loss_figure() {
    let dir = temp_dir("no-epochs");
    write_run(&dir, &[interval(1, 2, 2.0, 0.1)]);
    let files = plot_run(&dir).expect("figures");
    assert_eq!(files, vec![dir.join("loss.svg"), dir.join("loss.png")]);
    write_run(&dir, &[]);
    let err = plot_run(&dir).expect_err("nothing to plot").to_string();
    assert!(err.contains("metrics.jsonl") && err.contains("nothing to plot"), "{err}");
}

#[test]
fn malformed_metrics_lines_are_named_by_file_and_line() {
    let dir = temp_dir("malformed");
    let good = interval(1, 2, 2.0, 0.1).to_string();
    for (bad, what) in [
        ("{\"kind\": \"interval\", \"step\": 4", "not a JSON record"),
        ("{\"kind\": \"interval\", \"epoch\": 1, \"step\": \"four\"}", "not an interval record"),
        ("{\"kind\": \"epoch\", \"epoch\": 1}", "not an epoch record"),
        ("{\"step\": 4}", "without a \"kind\""),
    ] {
        std::fs::write(dir.join("metrics.jsonl"), format!("{good}\n\n{bad}\n")).expect("write");
        let err = RunLog::read(&dir).expect_err(bad).to_string();
        let file = dir.join("metrics.jsonl").display().to_string();
        assert!(err.starts_with(&file), "`{err}` does not name {file}");
        assert!(err.contains("line 3: ") && err.contains(what), "`{err}` should say line 3: {what}");
    }
    std::fs::remove_file(dir.join("metrics.jsonl")).expect("remove");
    let err = plot_run(&dir).expect_err("missing log").to_string();
    assert!(err.contains("metrics.jsonl"), "{err}");
}

#[test]
fn argmax_ties_go_to_the_lowest_index() {
    assert_eq!(argmax(&[0.2, 0.4, 0.4]), 1);
    assert_eq!(argmax(&[0.5, 0.5, 0.0]), 0);
    assert_eq!(argmax(&[f32::NAN, 0.1, 0.9]), 2);
    assert_eq!(argmax(&[0.3, f32::NAN, 0.3]), 0);
}

/// Logits on a coarse grid (so exact ties happen), their softmax, and the kernels' own
/// count of correct answers for them.
fn scored_batch(n: usize, k: usize, seed: u64) -> (Vec<u32>, Vec<f32>, u32) {
    let mut rng = Rng::new(seed, 0);
    let labels: Vec<u32> = (0..n).map(|_| rng.below(k as u64) as u32).collect();
    let logits: Vec<f32> = (0..n * k).map(|_| (rng.normal() * 2.0).round() as f32 * 0.5).collect();
    let mut probs = vec![0.0f32; n * k];
    ops::softmax(&logits, &mut probs, n, k);
    let (mut loss, mut correct, mut dz) = (vec![0.0f32; n], vec![0u32; n], vec![0.0f32; n * k]);
    ops::softmax_xent(&logits, &labels, 1.0, &mut loss, &mut correct, &mut dz, n, k);
    (labels, probs, correct.iter().sum())
}

#[test]
fn confusion_counts_every_sample_and_its_diagonal_is_the_accuracy() {
    for (n, k) in [(1000, 10), (257, 3), (5, 2)] {
        let (labels, probs, correct) = scored_batch(n, k, n as u64);
        let m = confusion(&labels, &probs, k).expect("matrix");
        assert_eq!(m.len(), k);
        assert_eq!(m.iter().flatten().sum::<u64>(), n as u64, "every sample counted once");
        for (c, row) in m.iter().enumerate() {
            assert_eq!(row.iter().sum::<u64>(), labels.iter().filter(|&&l| l as usize == c).count() as u64);
        }
        let diagonal: u64 = (0..k).map(|c| m[c][c]).sum();
        assert_eq!(diagonal, u64::from(correct), "the diagonal counts what the kernels count as correct");
        assert_eq!(overall_accuracy(&m), f64::from(correct) / n as f64);
        let per_class = per_class_accuracy(&m);
        for (c, row) in m.iter().enumerate() {
            assert_eq!(per_class[c], row[c] as f64 / row.iter().sum::<u64>() as f64);
        }
    }
}

#[test]
fn confusion_rejects_mismatched_shapes() {
    let err = confusion(&[0, 1], &[0.5; 5], 2).expect_err("5 values for 2×2").to_string();
    assert!(err.contains("5 probabilities for 2 samples of 2 classes"), "{err}");
    let err = confusion(&[0, 3], &[0.5; 4], 2).expect_err("label 3 of 2 classes").to_string();
    assert!(err.contains("sample 1 has label 3"), "{err}");
}

#[test]
fn confusion_table_names_the_classes() {
    let m = vec![vec![8, 2, 0], vec![1, 9, 0], vec![0, 3, 7]];
    let table = confusion_table(&m, &["cat".into(), "dog".into(), "bird".into()]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[0].starts_with("true \\ predicted") && lines[0].ends_with("accuracy"), "{table}");
    assert!(lines[1].starts_with(" 0 cat") && lines[1].trim_end().ends_with("0.8000"), "{table}");
    assert!(lines[3].contains("bird") && lines[3].contains(" 3 ") && lines[3].ends_with("0.7000"), "{table}");
    assert_eq!(lines[4], "overall accuracy 0.8000 (24 of 30 correct)");
}

#[test]
fn confusion_figure_shows_class_names_and_counts() {
    let dir = temp_dir("confusion");
    let m = vec![vec![50, 3, 1], vec![4, 40, 6], vec![0, 2, 44]];
    let class_names = vec!["Sneaker".to_string(), "Sandal".into(), "Ankle boot".into()];
    let files = plot_confusion(&m, &class_names, &dir.join("confusion")).expect("figure");
    assert_eq!(files, vec![dir.join("confusion.svg"), dir.join("confusion.png")]);
    assert_png(&files[1]);
    let svg = svg_text(&files[0]);
    let texts = texts(&svg);
    for text in
        ["Sneaker", "Sandal", "Ankle boot", "true class", "predicted class", "accuracy per class", "40", "0.800"]
    {
        assert!(texts.contains(&text), "confusion.svg lacks the text `{text}`: {texts:?}");
    }
}

#[test]
fn confident_mistakes_come_most_confident_first() {
    // Sample 0 right; 1 wrong at 0.6; 2 wrong at 0.9; 3 wrong at 0.9 (after 2); 4 right.
    let probs = [0.8, 0.2, 0.4, 0.6, 0.9, 0.1, 0.1, 0.9, 0.3, 0.7];
    let labels = [0, 0, 1, 0, 1];
    let m = confident_mistakes(&labels, &probs, 2, 10).expect("mistakes");
    let order: Vec<(usize, usize, usize)> = m.iter().map(|m| (m.index, m.label, m.predicted)).collect();
    assert_eq!(order, vec![(2, 1, 0), (3, 0, 1), (1, 0, 1)]);
    assert_eq!(m[0], Mistake { index: 2, label: 1, predicted: 0, p: 0.9 });
    assert_eq!(confident_mistakes(&labels, &probs, 2, 1).expect("one").len(), 1);
}

/// `n` random 4×4 "images" (or `width` features) of `k` classes, and random probabilities.
fn image_set(n: usize, width: usize, k: usize) -> (Dataset, Vec<f32>) {
    let mut rng = Rng::new(9, 0);
    let pixels = (0..n * width).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|i| (i % k) as u32).collect();
    let probs = (0..n * k).map(|_| rng.uniform() as f32).collect();
    let data = Dataset {
        source: "synthetic".into(),
        features: FeatureData::U8(pixels),
        labels,
        rows: n,
        width,
        shape: wgtrain::model::Shape::Flat(width),
        classes: k,
    };
    (data, probs)
}

#[test]
fn mistakes_figure_for_square_images_only() {
    let dir = temp_dir("mistakes");
    let (data, probs) = image_set(40, 16, 3);
    let files = plot_mistakes(&data, &probs, &names(3), 6, &dir.join("mistakes")).expect("figure");
    assert_eq!(files, vec![dir.join("mistakes.svg"), dir.join("mistakes.png")]);
    assert_png(&files[1]);
    let svg = svg_text(&files[0]);
    assert!(svg.contains("true: kind") && svg.contains("pred: kind"), "captions missing");
    assert_eq!(svg.matches("true: ").count(), 6);

    let (flat, probs) = image_set(40, 5, 3);
    let none = plot_mistakes(&flat, &probs, &names(3), 6, &dir.join("flat")).expect("skipped, not failed");
    assert!(none.is_empty());
    assert!(!dir.join("flat.png").exists());
}

#[test]
fn write_run_figures_writes_every_figure() {
    let dir = temp_dir("all");
    write_run(&dir, &two_epochs());
    let (test, probs) = image_set(30, 784, 3);
    // A network with a convolution: its first layer's filters are drawn too.
    let model = Spec::parse("conv:6:5:p2,relu,pool:2,flatten,linear", &[])
        .unwrap()
        .build(Shape::Image { c: 1, h: 28, w: 28 }, 3)
        .unwrap();
    let params = model.init(1);
    let files = write_run_figures(&dir, &test, &probs, &names(3), (&model, &params)).expect("figures");
    let stems: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        stems,
        [
            "loss.svg",
            "loss.png",
            "accuracy.svg",
            "accuracy.png",
            "filters.svg",
            "filters.png",
            "confusion.svg",
            "confusion.png",
            "mistakes.svg",
            "mistakes.png"
        ]
    );
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        assert_png(f);
    }
    let err =
        write_run_figures(&dir, &test, &probs[1..], &names(3), (&model, &params)).expect_err("short probabilities");
    // An MLP has no filters to draw.
    let mlp = Model::mlp(test.shape, &[8], 3).unwrap();
    let files = write_run_figures(&dir, &test, &probs, &names(3), (&mlp, &mlp.init(1))).expect("figures");
    assert_eq!(files.len(), 8);
    assert!(err.to_string().contains("probabilities"), "{err}");
}

#[test]
fn overlay_draws_one_labelled_line_per_run() {
    let root = temp_dir("overlay");
    let (a, b) = (root.join("batch-32"), root.join("pure-sgd"));
    for d in [&a, &b] {
        std::fs::create_dir_all(d).expect("dir");
    }
    write_run(&a, &two_epochs());
    // A run with far more steps: the step axis becomes logarithmic.
    write_run(&b, &[interval(1, 5000, 1.0, 0.01), interval(1, 10000, 0.6, 0.01)]);
    let runs = vec![a, b];
    for (x, desc) in [(XAxis::Step, "step (parameter updates) (log scale)"), (XAxis::Samples, "training samples seen")]
    {
        let files = plot_overlay(&runs, x, &root.join(x.stem())).expect("overlay");
        assert_png(&files[1]);
        let svg = svg_text(&files[0]);
        for text in ["batch-32 (sgd, batch 32, lr 0.01)", "pure-sgd (sgd, batch 32, lr 0.01)", desc] {
            assert!(svg.contains(text), "{} lacks `{text}`", files[0].display());
        }
    }
    assert_eq!(XAxis::parse("seconds").expect("parses"), XAxis::Seconds);
    assert!(XAxis::parse("minutes").is_err());
    let err = plot_overlay(&[root.join("missing")], XAxis::Step, &root.join("o")).expect_err("no such run");
    assert!(err.to_string().contains("missing"), "{err}");
}

/// Whether `p` lies in the convex polygon `poly` (either orientation), borders included.
fn inside(poly: &[(f64, f64)], p: (f64, f64)) -> bool {
    let cross = |a: (f64, f64), b: (f64, f64)| (b.0 - a.0) * (p.1 - a.1) - (b.1 - a.1) * (p.0 - a.0);
    let signs: Vec<f64> = (0..poly.len()).map(|i| cross(poly[i], poly[(i + 1) % poly.len()])).collect();
    signs.iter().all(|&s| s >= -1e-12) || signs.iter().all(|&s| s <= 1e-12)
}

#[test]
fn simplex_points_fall_in_their_decision_regions() {
    for (c, v) in VERTICES.iter().enumerate() {
        let mut p = [0.0f32; 3];
        p[c] = 1.0;
        assert_eq!(barycentric(&p), *v, "a one-hot p sits on its corner");
    }
    let (cx, cy) = centroid();
    assert!((cx - 0.5).abs() < 1e-12 && (cy - VERTICES[2].1 / 3.0).abs() < 1e-12);
    let mut rng = Rng::new(3, 0);
    for _ in 0..2000 {
        let raw: Vec<f64> = (0..3).map(|_| rng.uniform()).collect();
        let s: f64 = raw.iter().sum();
        let p: Vec<f32> = raw.iter().map(|v| (v / s) as f32).collect();
        let c = argmax(&p);
        let xy = barycentric(&p);
        assert!(inside(&decision_region(c), xy), "p = {p:?} is not in region {c}");
        for other in (0..3).filter(|&o| o != c && p[o] < p[c] - 1e-4) {
            assert!(!inside(&decision_region(other), xy), "p = {p:?} is also in region {other}");
        }
    }
}

#[test]
fn simplex_sheet_and_animation_frames_are_drawn() {
    let dir = temp_dir("simplex");
    let (test, probs) = image_set(30, 2, 3);
    let frame = |title: &str| SimplexFrame {
        title: title.into(),
        train: Points { probs: probs.clone(), labels: test.labels.clone() },
        test: Points { probs: probs[..30].to_vec(), labels: test.labels[..10].to_vec() },
    };
    let frames = vec![frame("initial weights"), frame("epoch 1"), frame("epoch 2")];
    let class_names = vec!["setosa".to_string(), "versicolor".into(), "virginica".into()];
    let files = plot_simplex_sheet(&frames, &class_names, 2, &dir.join("sheet")).expect("sheet");
    assert_png(&files[1]);
    let svg = svg_text(&files[0]);
    for text in ["setosa", "versicolor", "virginica", "initial weights", "epoch 2"] {
        assert!(svg.contains(text), "sheet.svg lacks `{text}`");
    }
    let (rgb, h) = simplex_frame_rgb(&frames[0], &class_names, 300).expect("frame");
    assert_eq!(rgb.len(), 3 * h as usize * 420, "the frame is at least 420 wide");
    assert!(rgb.iter().any(|&v| v != 255), "the frame is not blank");
    let err = plot_simplex_sheet(&frames, &names(4), 2, &dir.join("four")).expect_err("4 classes");
    assert!(err.to_string().contains("3 classes"), "{err}");
}

#[test]
fn live_figures_are_redrawn_after_an_epoch_but_not_too_often() {
    use wgtrain::train::{EpochRecord, Observer, Quiet};
    let dir = temp_dir("live");
    write_run(&dir, &two_epochs());
    let record: EpochRecord = serde_json::from_value(epoch(1, 4, 1.2, 0.61)).expect("an epoch record");
    let mut quiet = Quiet;
    let mut live = wgtrain::plot::LiveFigures::new(&mut quiet, &dir);
    live.epoch_end(&record);
    assert_png(&dir.join("loss.png"));
    assert_png(&dir.join("accuracy.png"));
    // Right after a drawing the next epoch does not redraw (at most every few seconds).
    std::fs::remove_file(dir.join("loss.png")).unwrap();
    live.epoch_end(&record);
    assert!(!dir.join("loss.png").exists(), "redrawn within the interval");
}
