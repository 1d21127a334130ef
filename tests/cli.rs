//! The command line: bad values get one clear line naming the flag or file, a non-zero
//! exit and no panic; a tiny run writes its run folder; eval reads it back.

use std::process::Command;

fn wgtrain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wgtrain")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn bad_values_get_one_clear_line() {
    let cases: [(&[&str], &str); 8] = [
        (&["train", "--batch", "0"], "--batch: 0 is invalid"),
        (&["train", "--lr", "0"], "--lr: 0 is invalid: expected a positive number"),
        (&["train", "--lr", "-1"], "--lr: -1 is invalid"),
        (&["train", "--optimizer", "rmsprop"], "--optimizer: rmsprop is invalid: expected sgd, momentum"),
        (&["train", "--data", "/no/such/dir"], "/no/such/dir"),
        (&["train", "--schedule", "wobble"], "unknown schedule `wobble`"),
        (&["train", "--device", "tpu"], "--device: tpu is invalid"),
        (&["train", "--epochs", "0"], "--epochs: 0 is invalid"),
    ];
    for (args, want) in cases {
        let (ok, _, err) = wgtrain(args);
        assert!(!ok, "{args:?} succeeded");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got:\n{err}");
        assert!(lines[0].contains(want), "{args:?}: `{}` lacks `{want}`", lines[0]);
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    }
}

#[test]
fn a_tiny_run_writes_its_folder_and_eval_reads_it() {
    let dir = std::env::temp_dir().join(format!("wgtrain-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    let (ok, out, err) =
        wgtrain(&["train", "--device", "cpu", "--epochs", "2", "--limit", "2000", "--hidden", "32", "--out", d]);
    assert!(ok, "{out}\n{err}");
    for f in ["config.json", "metrics.jsonl", "model.safetensors"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let epochs = log.lines().filter(|l| l.contains("\"kind\":\"epoch\"")).count();
    assert_eq!(epochs, 2);
    assert!(log.lines().filter(|l| l.contains("\"kind\":\"interval\"")).count() >= 2);
    let (ok, out, err) = wgtrain(&["eval", d, "--device", "cpu"]);
    assert!(ok && out.contains("accuracy"), "{out}\n{err}");
}
