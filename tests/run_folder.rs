//! The run folder is safe to share a disk with: a finished run is not overwritten, a
//! running one is locked, and `--resume` continues exactly the recorded run or refuses.

use std::path::PathBuf;
use std::process::Command;

fn wgtrain(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgtrain")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-runfolder-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small CSV data set (two classes on two columns).
fn csv(dir: &std::path::Path, shift: f32) -> String {
    let mut rows = String::new();
    for i in 0..120 {
        let c = i % 2;
        rows += &format!("{c},{},{}\n", (i % 5) as f32 + shift, c as f32 * 3.0 + (i % 3) as f32);
    }
    let p = dir.join("d.csv");
    std::fs::write(&p, rows).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_finished_run_is_not_overwritten_and_force_replaces_it() {
    let dir = scratch("force");
    let data = csv(&dir, 0.0);
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--device", "cpu", "--data", &data, "--epochs", "2", "--hidden", "4", "--out", o];
        a.extend_from_slice(extra);
        wgtrain(&a)
    };
    assert_eq!(train(&[]).0, Some(0));
    let first = std::fs::read(out.join("model.safetensors")).unwrap();
    let (code, _, err) = train(&["--seed", "2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("holds a run") && err.contains("--resume") && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), first, "the finished run was touched");
    let (code, _, err) = train(&["--seed", "2", "--force"]);
    assert_eq!(code, Some(0), "{err}");
    assert_ne!(std::fs::read(out.join("model.safetensors")).unwrap(), first, "--force replaced the run");
    assert!(!out.join("run.lock").exists(), "the lock is released at the end");
}

#[test]
fn a_locked_folder_is_refused_and_a_stale_lock_is_taken_over() {
    let dir = scratch("lock");
    let data = csv(&dir, 0.0);
    let out = dir.join("run");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.to_str().unwrap();
    // This test process is alive: its id in the lock means a run is writing the folder.
    std::fs::write(out.join("run.lock"), std::process::id().to_string()).unwrap();
    let args = ["train", "--device", "cpu", "--data", &data, "--epochs", "1", "--hidden", "4", "--out", o];
    let (code, _, err) = wgtrain(&args);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("locked by process {}", std::process::id())), "{err}");
    assert!(!out.join("config.json").exists(), "nothing was written into the locked folder");
    // A lock left by a process that is gone (a run killed with -9) is taken over.
    std::fs::write(out.join("run.lock"), "4294967").unwrap();
    let (code, _, err) = wgtrain(&args);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn resume_refuses_flags_that_change_the_run_and_data_that_changed() {
    let dir = scratch("resume");
    let data = csv(&dir, 0.0);
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let a = ["train", "--device", "cpu", "--data", &data, "--epochs", "3", "--hidden", "4", "--out", o];
    let (code, _, err) = wgtrain(&[&a[..], &["--stop-after", "4"]].concat());
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = wgtrain(&["train", "--resume", o, "--lr", "0.5", "--hidden", "9", "--device", "cpu"]);
    assert_eq!(code, Some(2), "{err}");
    let line = err.lines().find(|l| l.starts_with("error")).unwrap_or_default();
    let named = line.split("(with").next().unwrap_or_default();
    assert!(named.contains("--lr") && named.contains("--hidden") && !named.contains("--device"), "{line}");
    // The same file with other content: refused, naming the file.
    csv(&dir, 1.0);
    let (code, _, err) = wgtrain(&["train", "--resume", o, "--device", "cpu"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&data) && err.contains("content changed"), "{err}");
    csv(&dir, 0.0);
    let (code, out, err) = wgtrain(&["train", "--resume", o, "--device", "cpu"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("resuming"), "{out}");
}

#[test]
fn config_json_spells_choices_as_the_cli_does() {
    use wgtrain::optim::Schedule;
    for s in
        ["constant", "step:3:0.5", "exp:0.9", "cosine", "cosine:1.5", "cosine:0:0.0001", "plateau", "plateau:4:0.5"]
    {
        assert_eq!(Schedule::parse(s).unwrap().to_string(), s, "{s} round-trips");
    }
    let dir = scratch("config");
    let data = csv(&dir, 0.0);
    let out = dir.join("run");
    let o = out.to_str().unwrap();
    let args = ["train", "--device", "cpu", "--data", &data, "--epochs", "1", "--hidden", "4", "--out", o];
    let (code, stdout, err) = wgtrain(&[&args[..], &["--optimizer", "momentum", "--lr", "0.1"]].concat());
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.lines().next().unwrap_or_default().contains("momentum lr 0.1 (cosine), batch 128"), "{stdout}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let c = &cfg["config"];
    assert_eq!((c["schedule"].as_str(), c["optimizer"]["kind"].as_str()), (Some("cosine"), Some("momentum")));
    assert_eq!(c["batch"].as_u64(), Some(128));
    let text = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(text.contains("\"momentum\": 0.9,") && text.contains("\"lr\": 0.1,"), "{text}");
}
