//! The validation split and feature standardization: what selects never sees the test
//! set, and CSV columns on different scales are standardized with training statistics
//! that travel with the weights.

mod common;
use std::path::PathBuf;
use std::process::Command;
use wgtrain::data::holdout::{stratified, ValSize};
use wgtrain::data::normalize::{InputTransform, Normalize};
use wgtrain::data::{load_idx_dir, Dataset, FeatureData, Split};

fn fashion() -> Split {
    load_idx_dir(&common::fashion_mnist_dir(), None).unwrap()
}

#[test]
fn the_default_holds_out_5000_of_fashion_mnist_stratified_and_seeded() {
    let mut s = fashion();
    let n = ValSize::samples(None, s.train.rows);
    assert_eq!(n, 5000);
    let before: Vec<u32> = s.train.labels.clone();
    s.hold_out(n, 1).unwrap();
    assert_eq!((s.train.rows, s.val.rows), (55000, 5000));
    // Fashion-MNIST's training set is balanced: 500 of each class held out.
    for c in 0..10 {
        assert_eq!(s.val.labels.iter().filter(|&&l| l == c).count(), 500, "class {c}");
    }
    // Disjoint and complete: the held-out indices and the kept ones partition the set.
    let held = stratified(&before, 10, 5000, 1);
    assert_eq!(held, stratified(&before, 10, 5000, 1), "same seed, same split");
    assert_ne!(held, stratified(&before, 10, 5000, 2), "another seed, another split");
    assert!(held.windows(2).all(|w| w[0] < w[1]));
    let vals: Vec<u32> = held.iter().map(|&i| before[i as usize]).collect();
    assert_eq!(vals, s.val.labels);
}

#[test]
fn an_unbalanced_set_keeps_its_class_shares() {
    // 70 of class 0, 20 of class 1, 10 of class 2: 10 held out → 7, 2, 1.
    let labels: Vec<u32> = (0..100)
        .map(|i| {
            if i < 70 {
                0
            } else if i < 90 {
                1
            } else {
                2
            }
        })
        .collect();
    let held = stratified(&labels, 3, 10, 5);
    let count = |c| held.iter().filter(|&&i| labels[i as usize] == c).count();
    assert_eq!((count(0), count(1), count(2)), (7, 2, 1));
    // Remainders: 11 of 100 → 7.7, 2.2, 1.1 → 7, 2, 1 plus one to the largest remainder.
    let held = stratified(&labels, 3, 11, 5);
    let count = |c| held.iter().filter(|&&i| labels[i as usize] == c).count();
    assert_eq!((count(0), count(1), count(2)), (8, 2, 1));
    assert_eq!(ValSize::parse("0.2").unwrap(), ValSize::Fraction(0.2));
    assert_eq!(ValSize::samples(Some(ValSize::Fraction(0.2)), 120), 24);
    assert!(ValSize::parse("1.5").is_err() && ValSize::parse("-3").is_err());
}

fn table(rows: Vec<[f32; 3]>) -> Dataset {
    let n = rows.len();
    Dataset {
        source: "t.csv".into(),
        features: FeatureData::F32(rows.concat()),
        labels: (0..n as u32).map(|i| i % 2).collect(),
        rows: n,
        width: 3,
        shape: wgtrain::model::Shape::Flat(3),
        classes: 2,
    }
}

#[test]
fn csv_columns_are_standardized_with_training_statistics() {
    // Columns on scales 1, 1000 and a constant one.
    let mut train = table(vec![[1.0, 1000.0, 5.0], [3.0, 3000.0, 5.0], [5.0, 2000.0, 5.0], [7.0, 2000.0, 5.0]]);
    let t = InputTransform::fit(&train, Normalize::Standard);
    assert_eq!(t.mean, vec![4.0, 2000.0, 5.0]);
    assert_eq!(t.std[2], 1.0, "a constant column gets scale 1");
    t.apply(&mut train);
    let FeatureData::F32(x) = &train.features else { unreachable!() };
    for c in 0..3 {
        let col: Vec<f64> = x.iter().skip(c).step_by(3).map(|&v| f64::from(v)).collect();
        let mean = col.iter().sum::<f64>() / 4.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-6, "column {c} mean {mean}");
        assert!(c == 2 || (var - 1.0).abs() < 1e-5, "column {c} variance {var}");
    }
    // A test set gets the training statistics, not its own.
    let mut test = table(vec![[4.0, 2000.0, 9.0]]);
    t.apply(&mut test);
    assert_eq!(test.features, FeatureData::F32(vec![0.0, 0.0, 4.0]));
    // Images keep x/255 unless asked.
    let img = Dataset { features: FeatureData::U8(vec![0, 255, 51, 102]), width: 2, rows: 2, ..table(vec![]) };
    let none = InputTransform::fit(&img, Normalize::None);
    assert_eq!((none.divide, none.mean.len()), (255.0, 0));
    assert_eq!(Normalize::default_for(&img), Normalize::None);
    assert_eq!(Normalize::default_for(&test), Normalize::Standard);
}

fn wgtrain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgtrain")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-val-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn a_csv_run_stores_its_scaling_and_eval_and_predict_apply_it() {
    let dir = scratch("csv");
    std::fs::create_dir_all(&dir).unwrap();
    // Two classes told apart by the second column, which is on a scale of thousands.
    let mut rows = String::from("label,a,b\n");
    for i in 0..200 {
        let c = i % 2;
        rows += &format!("{c},{},{}\n", (i % 7) as f32 * 0.1, 1000.0 + 500.0 * c as f32 + (i % 13) as f32 * 10.0);
    }
    let csv = dir.join("d.csv");
    std::fs::write(&csv, &rows).unwrap();
    let run = dir.join("run");
    let (c, r) = (csv.to_str().unwrap(), run.to_str().unwrap());
    let (ok, out, err) =
        wgtrain(&["train", "--device", "cpu", "--data", c, "--epochs", "30", "--hidden", "8", "--out", r]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("validation"), "{out}");
    let meta = std::fs::read(run.join("model.safetensors")).unwrap();
    let header = String::from_utf8_lossy(&meta[..2000.min(meta.len())]).to_string();
    assert!(header.contains("wgtrain.input") && header.contains("mean"), "{header}");
    let (ok, out, err) = wgtrain(&["eval", r, "--device", "cpu", "--data", c]);
    assert!(ok && out.contains("accuracy 1.0000"), "standardized like training: {out}{err}");
    let probe = dir.join("probe.csv");
    std::fs::write(&probe, "0.3,1000\n0.3,1500\n").unwrap();
    let (ok, out, err) = wgtrain(&["predict", r, probe.to_str().unwrap()]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("class 0") && lines[1].contains("class 1"), "{out}");
    // --val 0 leaves nothing to select on: --early-stop is refused, naming both.
    let (ok, _, err) = wgtrain(&["train", "--device", "cpu", "--data", c, "--val", "0", "--early-stop", "3"]);
    assert!(!ok && err.contains("--early-stop") && err.contains("--val 0"), "{err}");
}
