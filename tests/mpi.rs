//! `train --distributed` under `mpirun -np 2` (a build with `--features mpi`, Open MPI
//! installed): two ranks give the bits of one process with `--shards 2` and of each
//! other, a killed rank ends the job with its last checkpoint whole, and bad input is one
//! error line.
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use wgtrain::checkpoint;

const BIN: &str = env!("CARGO_BIN_EXE_wgtrain");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-mpi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `mpirun -np 2 wgtrain train --distributed ARGS`.
fn mpirun(args: &[&str]) -> Command {
    mpirun_np(2, args)
}

/// `mpirun -np N wgtrain train --distributed ARGS`, on the fixed rule's kernels (no
/// measuring, no kernel cache written: the ranks run at once).
fn mpirun_np(n: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-np", &n.to_string(), BIN, "train", "--distributed"]).args(args);
    c.env("WGTRAIN_KERNELS", "fixed");
    c
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// 64 SGD steps of 128 (8,192 samples).
const RUN: [&str; 16] = [
    "--limit",
    "8192",
    "--val",
    "0",
    "--epochs",
    "1",
    "--batch",
    "128",
    "--optimizer",
    "sgd",
    "--lr",
    "0.01",
    "--schedule",
    "constant",
    "--log-every",
    "8",
];

/// Panics with the number of weights that differ (not the million of them).
fn assert_same(a: &[u32], b: &[u32], what: &str) {
    let differ = a.iter().zip(b).filter(|(p, q)| p != q).count();
    assert!(a.len() == b.len() && differ == 0, "{what}: {differ} of {} weights differ", a.len());
}

fn weights(dir: &Path) -> Vec<u32> {
    checkpoint::load_weights(&dir.join("model.safetensors")).unwrap().params.iter().map(|p| p.to_bits()).collect()
}

/// The logged losses and accuracies (every record but its times and rates).
fn metrics(dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    log.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.retain(|k, _| !k.contains("seconds") && !k.contains("elapsed") && !k.contains("per_s"));
            v.to_string()
        })
        .collect()
}

/// The ranks: wgtrain processes whose command line names the run folder `dir`.
fn ranks_of(dir: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            comm.trim() == "wgtrain" && String::from_utf8_lossy(&cmd).contains(dir.to_str().unwrap())
        })
        .collect()
}

#[test]
fn two_ranks_give_the_bits_of_two_shares_on_both_devices() {
    let gpu = std::env::var("WGTRAIN_REQUIRE_GPU").is_ok_and(|v| v == "1");
    let devices: &[&str] = if gpu { &["cpu", "gpu"] } else { &["cpu"] };
    for dev in devices {
        let (ranks, shards) = (scratch(&format!("ranks-{dev}")), scratch(&format!("shards-{dev}")));
        let o = mpirun(&RUN).args(["--device", dev, "--out"]).arg(&ranks).output().unwrap();
        assert!(o.status.success(), "{dev}: {}", text(&o));
        assert!(text(&o).contains("weights identical on all 2 ranks"), "{dev}: {}", text(&o));
        let mut one = Command::new(BIN);
        one.arg("train").args(RUN).args(["--device", dev, "--shards", "2", "--out"]).arg(&shards);
        one.env("WGTRAIN_KERNELS", "fixed");
        let o = one.output().unwrap();
        assert!(o.status.success(), "{dev}: {}", text(&o));
        assert_same(&weights(&ranks), &weights(&shards), &format!("{dev}: 2 ranks and --shards 2"));
        assert_eq!(metrics(&ranks), metrics(&shards), "{dev}: the logged metrics differ");
    }
}

/// Three ranks, where the order of the sum shows in the bits ((x₀ + x₁) + x₂ is not
/// x₀ + (x₁ + x₂)): the bits of `--shards 3`, with a batch of 100 that splits 33/33/34.
#[test]
fn three_ranks_add_in_rank_order() {
    let run = ["--device", "cpu", "--limit", "3000", "--val", "0", "--epochs", "1", "--batch", "100"];
    let (ranks, shards) = (scratch("three-ranks"), scratch("three-shards"));
    let o = mpirun_np(3, &run).arg("--out").arg(&ranks).output().unwrap();
    assert!(o.status.success() && text(&o).contains("identical on all 3 ranks"), "{}", text(&o));
    let o = Command::new(BIN).arg("train").args(run).args(["--shards", "3", "--out"]).arg(&shards).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_same(&weights(&ranks), &weights(&shards), "3 ranks and --shards 3");
    assert_eq!(metrics(&ranks), metrics(&shards), "the logged metrics differ");
}

#[test]
fn a_killed_rank_ends_the_job_and_the_checkpoint_resumes() {
    let dir = scratch("killed");
    let mut job = mpirun(&["--device", "cpu", "--epochs", "4", "--checkpoint-every", "20", "--log-every", "10"])
        .args(["--batch", "64", "--out"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = dir.join("state.safetensors");
    let t = Instant::now();
    while !state.exists() {
        assert!(t.elapsed() < Duration::from_secs(120), "no checkpoint after 2 minutes");
        assert!(job.try_wait().unwrap().is_none(), "the job ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let ranks = ranks_of(&dir);
    assert_eq!(ranks.len(), 2, "two ranks running");
    let victim = ranks.iter().max().unwrap();
    assert!(Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap().success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the job hangs 60 s after a rank was killed");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "a killed rank must fail the job");
    let t = Instant::now();
    while ranks.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
        assert!(t.elapsed() < Duration::from_secs(30), "a rank outlives the job by 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The checkpoint is whole: one process resumes it and finishes the run.
    let o = Command::new(BIN).args(["train", "--shards", "2", "--stop-after", "200", "--resume"]).arg(&dir).output();
    let o = o.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resuming"), "{}", text(&o));
}

#[test]
fn bad_input_is_one_error_line() {
    let missing = scratch("no-such-data");
    let o = mpirun(&["--device", "cpu", "--data"]).arg(&missing).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line, got: {err}");
    assert!(lines[0].contains(missing.to_str().unwrap()), "{}", lines[0]);
    let o = mpirun(&["--device", "cpu", "--batch", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--batch") && err.contains("ranks (2)"), "{err}");
}

/// Stopped after 40 steps and resumed with 2 ranks: the weights of the uninterrupted
/// 2-rank run, bit for bit; resumed in 3 shares instead: the same up to rounding.
#[test]
fn resume_with_the_same_ranks_is_exact() {
    let run: [&str; 12] =
        ["--device", "cpu", "--limit", "4096", "--val", "0", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.01"];
    let (whole, parts, three) = (scratch("whole"), scratch("parts"), scratch("three"));
    let o = mpirun(&run).arg("--out").arg(&whole).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for dir in [&parts, &three] {
        let o = mpirun(&run).args(["--stop-after", "40", "--out"]).arg(dir).output().unwrap();
        assert!(o.status.success() && text(&o).contains("stopped after step 40"), "{}", text(&o));
    }
    let o = mpirun(&["--resume", parts.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_same(&weights(&whole), &weights(&parts), "resumed on 2 ranks");
    let o = Command::new(BIN).args(["train", "--shards", "3", "--resume"]).arg(&three).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (a, b) = (weights(&whole), weights(&three));
    let worst = a.iter().zip(&b).map(|(p, q)| (f32::from_bits(*p) - f32::from_bits(*q)).abs()).fold(0f32, f32::max);
    let big = a.iter().map(|p| f32::from_bits(*p).abs()).fold(0f32, f32::max);
    assert!(worst > 0.0 && worst <= 1e-5 * big, "resumed in 3 shares: {worst:e} of {big:e}");
}

/// Ctrl-C reaching one rank only: every rank stops at the same step, rank 0 writes the
/// checkpoint, nobody hangs.
#[test]
fn ctrl_c_on_one_rank_stops_all_at_one_step() {
    let dir = scratch("ctrl-c");
    let mut job = mpirun(&["--device", "cpu", "--epochs", "4", "--batch", "64", "--log-every", "10", "--out"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !dir.join("metrics.jsonl").exists() {
        assert!(t.elapsed() < Duration::from_secs(120), "no metrics after 2 minutes");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ranks = ranks_of(&dir);
    assert_eq!(ranks.len(), 2, "two ranks running");
    assert!(Command::new("kill").args(["-INT", &ranks.iter().max().unwrap().to_string()]).status().unwrap().success());
    let t = Instant::now();
    while job.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(60), "the job hangs 60 s after Ctrl-C on one rank");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(job.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("stopped after step") && out.contains("weights identical on all 2 ranks"), "{out}");
    let o = Command::new(BIN).args(["train", "--stop-after", "1", "--resume"]).arg(&dir).output().unwrap();
    assert!(text(&o).contains("resuming"), "{}", text(&o));
}

/// Ranks that would start from different weights (here: different seeds, through
/// mpirun's `:` syntax) are refused before the first step, with one line.
#[test]
fn ranks_starting_apart_are_refused() {
    let args = |seed: &'static str| -> Vec<&'static str> {
        vec!["-np", "1", BIN, "train", "--distributed", "--device", "cpu", "--limit", "512", "--seed", seed]
    };
    let dir = scratch("apart");
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe"]).args(args("1")).arg("--out").arg(&dir);
    c.arg(":").args(args("2")).arg("--out").arg(&dir);
    let o = c.output().unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line, got: {err}");
    assert!(lines[0].contains("weights differ before training"), "{}", lines[0]);
}
