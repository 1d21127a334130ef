//! `wgtrain sweep` and `wgtrain lr-find` on a few hundred Fashion-MNIST samples: each run
//! reproducible, the charts' series what was logged, divergence kept and marked, the range
//! test deterministic (CPU and GPU) with its suggestions inside the scanned range.

mod common;
use clap::Parser;
use std::path::{Path, PathBuf};
use wgtrain::cli::{parse_lrs, Cli, Command, LrFindArgs, SweepArgs};
use wgtrain::lrfind;
use wgtrain::run::{parse_metrics, METRICS_FILE};
use wgtrain::sweep::{self, Sweep};
use wgtrain::train::Quiet;

/// A fresh folder under the system's temporary directory, for this process and test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sweep_args(out: &Path, lrs: &str) -> SweepArgs {
    let out = out.to_str().unwrap();
    let args = ["wgtrain", "sweep", "--device", "cpu", "--optimizer", "sgd", "--limit", "300", "--val", "60"];
    let rest = ["--epochs", "1", "--batch", "30", "--log-every", "2", "--lr", lrs, "--out", out];
    match Cli::try_parse_from(args.iter().chain(&rest)).unwrap().command {
        Some(Command::Sweep(a)) => *a,
        _ => unreachable!(),
    }
}

fn run_sweep(out: &Path, lrs: &str) -> Sweep {
    let a = sweep_args(out, lrs);
    sweep::sweep(&a.train, &a.lrs.0, &mut Quiet, &mut |_| {}).unwrap()
}

/// `(step, train_loss)` of every interval record in a run folder's log, read directly.
fn logged(dir: &Path) -> Vec<(f64, f64)> {
    let path = dir.join(METRICS_FILE);
    let (intervals, _) = parse_metrics(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
    intervals.iter().map(|r| (r.step as f64, r.train_loss)).collect()
}

#[test]
fn lr_lists_and_log_ranges_parse() {
    assert_eq!(parse_lrs("0.1,0.001,0.01,0.1").unwrap().0, vec![0.001, 0.01, 0.1]);
    assert_eq!(parse_lrs("1e-3..1:7").unwrap().0, vec![0.001, 0.00316, 0.01, 0.0316, 0.1, 0.316, 1.0]);
    assert_eq!(parse_lrs("1e-2..1:3").unwrap().0, vec![0.01, 0.1, 1.0]);
    for bad in ["", "0", "-1", "0.1,x", "1..0.1:3", "1e-3..1:1", "1e-3..1", "nan", "inf"] {
        assert!(parse_lrs(bad).is_err(), "{bad:?} parsed");
    }
    // Every train flag is accepted next to the rate list (and clap's own checks pass).
    <Cli as clap::CommandFactory>::command().debug_assert();
    let a = sweep_args(Path::new("x"), "1e-3..1:4");
    assert_eq!(a.lrs.0, vec![0.001, 0.01, 0.1, 1.0]);
    assert_eq!(a.train.limit, Some(300));
}

#[test]
fn sweep_runs_are_reproducible_and_the_chart_draws_what_was_logged() {
    let tmp = scratch("repro");
    let (a, b) = (run_sweep(&tmp.join("a"), "0.01,0.3"), run_sweep(&tmp.join("b"), "0.01,0.3"));
    assert_eq!(a.runs.len(), 2);
    for (ra, rb) in a.runs.iter().zip(&b.runs) {
        assert_eq!(ra.dir.file_name(), rb.dir.file_name());
        assert!(ra.diverged.is_none(), "{ra:?}");
        let same = |x: f64, y: f64| x.to_bits() == y.to_bits();
        assert!(same(ra.final_risk, rb.final_risk) && same(ra.best_risk, rb.best_risk), "{ra:?} vs {rb:?}");
        assert!(same(ra.val_loss, rb.val_loss) && same(ra.test_acc, rb.test_acc), "{ra:?} vs {rb:?}");
        assert_eq!(logged(&ra.dir), logged(&rb.dir));
    }
    // Same initial weights: the first logged risks agree across rates only in where they start.
    assert!(a.runs[1].final_risk < a.runs[0].final_risk, "α = 0.3 should beat α = 0.01 here: {:?}", a.runs);
    let lines = sweep::chart_lines(&a.runs).unwrap();
    for (line, run) in lines.iter().zip(&a.runs) {
        assert_eq!(line.points, logged(&run.dir), "the chart's series for α = {} is not the log", run.lr);
        assert_eq!(line.label, format!("α = {}", run.lr));
    }
    for f in ["sweep.csv", "sweep.svg", "sweep.png"] {
        assert!(a.out.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(a.out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("0.01,"), "{csv}");
    assert_eq!(a.best().map(|r| r.lr), Some(0.3));
    assert!(sweep::table(&a).contains("← best"));
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn a_diverging_rate_is_kept_and_marked_not_an_error() {
    let tmp = scratch("diverge");
    let s = run_sweep(&tmp, "0.1,1000");
    let (ok, bad) = (&s.runs[0], &s.runs[1]);
    assert!(ok.diverged.is_none(), "{ok:?}");
    let why = bad.diverged.as_deref().expect("α = 1000 diverges");
    assert!(why.contains("non-finite") || why.contains("above its start"), "{why}");
    assert!(bad.dir.join(METRICS_FILE).is_file(), "the diverged run's folder is kept");
    let lines = sweep::chart_lines(&s.runs).unwrap();
    assert!(lines[1].diverged && lines[1].label.contains("(diverged"), "{:?}", lines[1]);
    assert_eq!(lines[1].points, logged(&bad.dir), "drawn up to where it stopped");
    assert!(!lines[0].diverged);
    let csv = std::fs::read_to_string(s.out.join("sweep.csv")).unwrap();
    assert!(csv.lines().nth(2).unwrap().contains(",true,"), "{csv}");
    assert!(s.out.join("sweep.png").is_file());
    assert_eq!(s.best().map(|r| r.lr), Some(0.1));
    // A finite run whose risk ends above where it started counts as diverged too.
    let r = sweep::summarize(0.1, &ok.dir, ok.final_risk * 0.5, None).unwrap();
    assert!(r.diverged.as_deref().is_some_and(|d| d.contains("above its start")), "{r:?}");
    // So does one whose risk blew up and came back down (to chance level: dead ReLUs), as
    // α = 1 does on Fashion-MNIST with plain SGD.
    let dead = tmp.join("dead");
    std::fs::create_dir_all(&dead).unwrap();
    let line = |step: u64, loss: f64| {
        format!(
            "{{\"kind\":\"interval\",\"epoch\":1,\"step\":{step},\"samples_seen\":{},\"train_loss\":{loss},\
             \"train_acc\":0.1,\"lr\":1.0,\"elapsed_s\":0.1}}\n",
            step * 128
        )
    };
    std::fs::write(dead.join(METRICS_FILE), [line(43, 16102.25), line(86, 2.305), line(129, 2.304)].concat()).unwrap();
    let r = sweep::summarize(1.0, &dead, 2.58, None).unwrap();
    assert!(r.diverged.as_deref().is_some_and(|d| d.contains("blew up")), "{r:?}");
    assert_eq!(sweep::summarize(1.0, &dead, 9000.0, None).unwrap().diverged, None);
    let _ = std::fs::remove_dir_all(&tmp);
}

fn lr_find_args(device: &str, out: &Path) -> LrFindArgs {
    let out = out.to_str().unwrap();
    let args = ["wgtrain", "lr-find", "--device", device, "--optimizer", "sgd", "--limit", "2000", "--batch", "64"];
    let rest = ["--steps", "60", "--out", out];
    match Cli::try_parse_from(args.iter().chain(&rest)).unwrap().command {
        Some(Command::LrFind(a)) => *a,
        _ => unreachable!(),
    }
}

fn range_test(device: &str, out: &Path) -> lrfind::LrFind {
    let a = lr_find_args(device, out);
    let setup = sweep::Setup::new(&a.train, &mut |_| {}).unwrap();
    let range = lrfind::Range { start: a.start, end: a.end, steps: a.steps };
    let r = lrfind::lr_find(&setup, &a.train, range).unwrap();
    lrfind::write(&r, out).unwrap();
    r
}

fn check_range_test(device: &str) {
    let tmp = scratch(&format!("lr-find-{device}"));
    let (r1, r2) = (range_test(device, &tmp.join("1")), range_test(device, &tmp.join("2")));
    assert_eq!(r1, r2, "{device}: two range tests with the same seed differ");
    let (lo, hi) = (r1.points.first().unwrap().lr, r1.points.last().unwrap().lr);
    assert!((1e-7..=10.0).contains(&lo) && hi <= 10.0 && lo < hi);
    for s in [r1.steepest, r1.min_div10] {
        assert!(s >= lo / 10.0 && s <= hi, "{device}: suggestion {s:e} outside the scanned {lo:e}..{hi:e}");
    }
    assert!((lo..=hi).contains(&r1.steepest), "{device}: steepest {:e} not scanned", r1.steepest);
    // The smoothed loss is fastai's: bias-corrected EMA with β = 0.98.
    let mut avg = 0.0;
    for (t, p) in r1.points.iter().enumerate() {
        avg = 0.98 * avg + 0.02 * p.loss;
        let want = avg / (1.0 - 0.98f64.powi(t as i32 + 1));
        assert!((p.smoothed - want).abs() <= 1e-12 * want.abs().max(1.0));
    }
    for f in ["lr-find.csv", "lr-find.svg", "lr-find.png"] {
        assert!(tmp.join("1").join(f).is_file(), "{f} missing");
    }
    let drawn = lrfind::chart_series(&r1);
    assert_eq!(drawn.smoothed.len(), r1.points.len());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn lr_find_is_deterministic_and_suggests_a_scanned_rate_on_cpu() {
    check_range_test("cpu");
}

#[test]
fn lr_find_is_deterministic_and_suggests_a_scanned_rate_on_gpu() {
    if common::gpu().is_none() {
        return;
    }
    check_range_test("gpu");
}
