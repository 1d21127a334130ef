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

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn bad_devices_models_folders_and_checkpoints_are_refused_clearly() {
    let has_gpu = !wgtrain::gpu::list_adapters().is_empty();
    let mut cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["train".into(), "--device".into(), "gpu".into(), "--adapter".into(), "no-such-gpu".into()],
            "no adapter's name contains `no-such-gpu`".into(),
        ),
        (
            vec!["train".into(), "--device".into(), "cpu".into(), "--out".into(), "/proc/wgtrain-run".into()],
            "/proc/wgtrain-run".into(),
        ),
        (vec!["train".into(), "--hidden".into(), "16000000,16000000".into()], "at most 2^32 parameters".into()),
        (vec!["train".into(), "--hidden".into(), "40000,40000".into()], "at most 2^30 parameters".into()),
        (vec!["eval".into(), "/no/such/model.safetensors".into()], "/no/such/model.safetensors".into()),
    ];
    if has_gpu {
        cases.push((
            vec!["train".into(), "--device".into(), "gpu".into(), "--hidden".into(), "60000".into()],
            "max_storage_buffer_binding_size".into(),
        ));
    }
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, _, err) = wgtrain(&a);
        assert!(!ok && err.contains(&want) && !err.contains("panicked"), "{args:?}: {err}");
    }
    // A checkpoint of another architecture than the data.
    let dir = scratch("arch");
    let d = dir.to_str().unwrap();
    let csv = dir.with_extension("csv");
    std::fs::write(&csv, "0,1,2\n1,3,4\n0,5,6\n1,7,8\n0,1,1\n").unwrap();
    let (ok, out, err) =
        wgtrain(&["train", "--device", "cpu", "--data", csv.to_str().unwrap(), "--epochs", "1", "--out", d]);
    assert!(ok, "{out}{err}");
    let (ok, _, err) = wgtrain(&["eval", d, "--device", "cpu"]);
    assert!(!ok && err.contains("samples have 784 features, the model") && err.contains("takes 2"), "{err}");
}

#[test]
fn predict_reads_png_images_of_any_size() {
    let dir = scratch("predict");
    let d = dir.to_str().unwrap();
    let (ok, out, err) =
        wgtrain(&["train", "--device", "cpu", "--epochs", "1", "--limit", "3000", "--hidden", "32", "--out", d]);
    assert!(ok, "{out}{err}");
    // A 56×56 RGB PNG: a bright trouser-like bar on black.
    let png_path = dir.join("img.png");
    let f = std::fs::File::create(&png_path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), 56, 56);
    enc.set_color(png::ColorType::Rgb);
    let mut px = vec![0u8; 56 * 56 * 3];
    for y in 4..52 {
        for x in 20..36 {
            px[(y * 56 + x) * 3..][..3].copy_from_slice(&[220, 220, 220]);
        }
    }
    enc.write_header().unwrap().write_image_data(&px).unwrap();
    let (ok, out, err) = wgtrain(&["predict", d, png_path.to_str().unwrap()]);
    assert!(ok, "{err}");
    let line = out.lines().next().unwrap_or_default().to_string();
    assert!(line.contains("img.png: ") && line.contains('('), "{line}");
    let bad = dir.join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let (ok, _, err) = wgtrain(&["predict", d, bad.to_str().unwrap()]);
    assert!(!ok && err.contains("bad.png: not a readable PNG image"), "{err}");
}

#[test]
fn ctrl_c_checkpoints_and_exits_130_and_the_run_resumes() {
    let dir = scratch("sigint");
    let d = dir.to_str().unwrap().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(["train", "--device", "cpu", "--epochs", "200", "--hidden", "64", "--out", &d])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first epoch to finish, then interrupt.
    let metrics = dir.join("metrics.jsonl");
    let t = std::time::Instant::now();
    while !std::fs::read_to_string(&metrics).unwrap_or_default().contains("\"kind\":\"epoch\"") {
        assert!(t.elapsed().as_secs() < 120, "no epoch finished");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("resume with: wgtrain train --resume {d}")), "{stdout}");
    let r = wgtrain::run::load_resume(&dir).unwrap();
    assert!(r.progress.step > 0);
    let (ok, out, err) =
        wgtrain(&["train", "--resume", &d, "--device", "cpu", "--stop-after", &(r.progress.step + 5).to_string()]);
    assert!(ok && out.contains(&format!("resuming {d} at step {}", r.progress.step)), "{out}{err}");
}

/// A build without the `mpi` feature refuses `--distributed` with the way to get it.
#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_mpi_says_how_to_build_it() {
    let (ok, _, err) = wgtrain(&["train", "--distributed"]);
    assert!(!ok);
    assert!(err.starts_with("error: --distributed") && err.contains("--features mpi"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
