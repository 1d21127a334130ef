//! The battery of bad inputs: every flag value, data file, image and model that could
//! mislead or abort, run through the real binary. Each must fail with the right exit status
//! (2 for a usage error, 1 for a data error) and exactly one `error` line that names the
//! flag or file, the value and what was expected: never a panic, a backtrace or an
//! allocation the input cannot justify (the children's peak resident memory stays under
//! 1 GB). Beside it, the CSV reader's good surprises: a byte-order mark, quotes, CRLF and
//! other delimiters.

mod common;

use common::{gz, idx_bytes};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use wgtrain::data::{csv, FeatureData};

const BIN: &str = env!("CARGO_BIN_EXE_wgtrain");

/// A fresh empty directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An IDX file of bytes (`common::idx_bytes` with type 0x08).
fn idx_u8(dims: &[u32], data: &[u8]) -> Vec<u8> {
    idx_bytes(0x08, dims, data)
}

/// `n` bytes that do not compress (a xorshift stream).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) -> String {
    std::fs::write(path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// An IDX folder: `n` training and `m` test samples of `shape`, with these labels.
fn idx_dir(dir: &Path, shape: &[u32], train: &[u8], test: &[u8], test_shape: Option<&[u32]>) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let images = |labels: &[u8], shape: &[u32]| {
        let dims: Vec<u32> = [labels.len() as u32].iter().chain(shape).copied().collect();
        let values = labels.len() * shape.iter().product::<u32>() as usize;
        gz(&idx_u8(&dims, &noise(values, 7)))
    };
    write(&dir.join("train-images-idx3-ubyte.gz"), images(train, shape));
    write(&dir.join("train-labels-idx1-ubyte.gz"), gz(&idx_u8(&[train.len() as u32], train)));
    write(&dir.join("t10k-images-idx3-ubyte.gz"), images(test, test_shape.unwrap_or(shape)));
    write(&dir.join("t10k-labels-idx1-ubyte.gz"), gz(&idx_u8(&[test.len() as u32], test)));
    dir.to_str().unwrap().to_string()
}

/// A PNG chunk with its CRC.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    let mut v = (data.len() as u32).to_be_bytes().to_vec();
    v.extend(kind);
    v.extend(data);
    v.extend(crc.sum().to_be_bytes());
    v
}

/// A PNG that claims `w × h` gray pixels but holds (almost) nothing.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale, no interlace
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(chunk(b"IHDR", &ihdr));
    v.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    v.extend(chunk(b"IEND", &[]));
    v
}

fn png_image(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.write_header().unwrap().write_image_data(&vec![128u8; (w * h) as usize]).unwrap();
    out
}

/// A CSV of `rows` rows: labels cycling through `classes`, then `width` features.
fn csv_text(rows: usize, width: usize, classes: usize) -> String {
    (0..rows)
        .map(|i| {
            let f: Vec<String> = (0..width).map(|j| format!("{}", ((i * 7 + j * 3) % 11) as f32 / 10.0)).collect();
            format!("{},{}\n", i % classes, f.join(","))
        })
        .collect()
}

/// The peak resident memory of all waited-for children so far, in KiB.
fn children_peak_kib() -> i64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) }, 0);
    u.ru_maxrss
}

struct Case {
    name: String,
    args: Vec<String>,
    code: i32,
    want: Vec<String>,
}

fn case(name: &str, args: &[&str], code: i32, want: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        want: want.iter().map(|s| s.to_string()).collect(),
    }
}

/// Runs `wgtrain args` in `dir`; returns (exit code, stdout, stderr).
fn run(dir: &Path, args: &[String]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("XDG_RUNTIME_DIR", std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()))
        .env_remove("RUST_BACKTRACE")
        .env_remove("WGTRAIN_ADAPTER")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn every_bad_input_is_refused_with_one_clear_line() {
    let t0 = Instant::now();
    let d = scratch("battery");
    let p = |name: &str| d.join(name).to_str().unwrap().to_string();

    // Two tiny models for predict: 4 plain features, and an 8×8 "image".
    let ok4 = write(&d.join("ok4.csv"), csv_text(40, 4, 3));
    let ok64 = write(&d.join("ok64.csv"), csv_text(40, 64, 2));
    for (data, out) in [(&ok4, "m4"), (&ok64, "m64")] {
        let args: Vec<String> = ["train", "--device", "cpu", "--epochs", "1", "--hidden", "4", "--data", data, "--out"]
            .iter()
            .map(|s| s.to_string())
            .chain([p(out)])
            .collect();
        let (code, o, e) = run(&d, &args);
        assert_eq!(code, Some(0), "training the {out} model failed:\n{o}\n{e}");
    }
    let (m4, m64) = (p("m4"), p("m64"));

    // Data files.
    let empty = write(&d.join("empty.csv"), "");
    let blank = write(&d.join("blank.csv"), "\n\n  \n");
    let header_only = write(&d.join("header-only.csv"), "label,a,b\n");
    let non_utf8 = write(&d.join("latin1.csv"), b"label,a\n1,2\n0,\xe9\n".as_slice());
    let bad_field = write(&d.join("bad-field.csv"), "1,2,3\n0,4,5\n1,x,6\n");
    let short_row = write(&d.join("short-row.csv"), "1,2,3\n0,4,5\n1,6\n");
    let empty_field = write(&d.join("empty-field.csv"), "1,2,3\n0,,5\n");
    let neg_label = write(&d.join("neg-label.csv"), "1,2,3\n-1,4,5\n");
    let frac_label = write(&d.join("frac-label.csv"), "1,2,3\n1.5,4,5\n");
    let huge_label = write(&d.join("huge-label.csv"), "1000000,2,3\n0,4,5\n1,3,3\n");
    let one_class = write(&d.join("one-class.csv"), "1,2,3\n1,4,5\n1,3,3\n1,0,0\n");
    let nan = write(&d.join("nan.csv"), "1,2,3\n0,nan,5\n");
    let inf = write(&d.join("inf.csv"), "1,2,3\n0,1e39,5\n");
    let no_features = write(&d.join("no-features.csv"), "1\n0\n");
    let open_quote = write(&d.join("open-quote.csv"), "1,\"2\n0,3\n1,4\n");
    let bom_one_class = write(&d.join("bom-one.csv"), "\u{feff}1,2,3\n1,4,5\n");
    let one_row = write(&d.join("one-row.csv"), "1,2,3\n");
    let semi = write(&d.join("semi.csv"), "label;a;b\n1;0.5;2\n0;1;3\n");
    let train3 = write(&d.join("train3.csv"), csv_text(30, 2, 3));
    let test9 = write(&d.join("test9.csv"), "0,0.1,0.2\n9,0.3,0.4\n");
    let test_wide = write(&d.join("test-wide.csv"), "0,0.1,0.2,0.3\n1,0.3,0.4,0.5\n");
    let bad_test = write(&d.join("bad-test.csv"), "0,0.1,0.2\n1,oops,0.4\n");
    let a_dir = d.join("a-dir.csv");
    std::fs::create_dir_all(&a_dir).unwrap();
    let a_dir = a_dir.to_str().unwrap().to_string();

    // IDX folders.
    let idx_ok = idx_dir(&d.join("idx-ok"), &[4, 4], &[0, 1, 2, 0, 1, 2], &[0, 1], None);
    let idx_big_label = idx_dir(&d.join("idx-label"), &[4, 4], &[0, 1, 2, 7], &[0, 1], None);
    write(&d.join("idx-label/classes.txt"), "a\nb\nc\n");
    let idx_test9 = idx_dir(&d.join("idx-test9"), &[4, 4], &[0, 1, 2, 0], &[0, 9], None);
    let idx_one = idx_dir(&d.join("idx-one"), &[4, 4], &[1, 1, 1], &[1], None);
    let idx_shape = idx_dir(&d.join("idx-shape"), &[28, 28], &[0, 1, 0], &[1], Some(&[14, 56]));
    let idx_count = idx_dir(&d.join("idx-count"), &[4, 4], &[0, 1, 0], &[1], None);
    write(&d.join("idx-count/train-labels-idx1-ubyte.gz"), gz(&idx_u8(&[2], &[0, 1])));
    // A 1 MB gzip whose header claims 10^9 values, beside 60000 labels.
    let idx_lie = idx_dir(&d.join("idx-lie"), &[4, 4], &[0, 1, 0], &[1], None);
    let lying = gz(&idx_u8(&[1_000_000, 1000], &noise(1 << 20, 3)));
    write(&d.join("idx-lie/train-images-idx3-ubyte.gz"), &lying);
    write(&d.join("idx-lie/train-labels-idx1-ubyte.gz"), gz(&idx_u8(&[60_000], &noise(60_000, 5))));
    // The same claim with as many labels: the stream runs dry after 1 MB.
    let idx_lie2 = idx_dir(&d.join("idx-lie2"), &[1000], &[0, 1, 0], &[1], None);
    write(&d.join("idx-lie2/train-images-idx3-ubyte.gz"), &lying);
    let labels: Vec<u8> = noise(1_000_000, 9).iter().map(|b| b % 10).collect();
    write(&d.join("idx-lie2/train-labels-idx1-ubyte.gz"), gz(&idx_u8(&[1_000_000], &labels)));
    let idx_trunc = idx_dir(&d.join("idx-trunc"), &[4, 4], &[0, 1, 0], &[1], None);
    let full = gz(&idx_u8(&[3, 4, 4], &noise(48, 1)));
    write(&d.join("idx-trunc/train-images-idx3-ubyte.gz"), &full[..full.len() / 2]);
    let idx_corrupt = idx_dir(&d.join("idx-corrupt"), &[4, 4], &[0, 1, 0], &[1], None);
    let mut bad = gz(&idx_u8(&[3, 4, 4], &noise(48, 1)));
    let mid = bad.len() / 2;
    bad[mid..mid + 8].copy_from_slice(&[0xff; 8]);
    write(&d.join("idx-corrupt/train-images-idx3-ubyte.gz"), &bad);
    let idx_magic = idx_dir(&d.join("idx-magic"), &[4, 4], &[0, 1, 0], &[1], None);
    write(&d.join("idx-magic/train-images-idx3-ubyte.gz"), gz(b"\x12\x34\x08\x03hello"));
    let idx_type = idx_dir(&d.join("idx-type"), &[4, 4], &[0, 1, 0], &[1], None);
    write(&d.join("idx-type/train-images-idx3-ubyte.gz"), gz(&idx_bytes(0x0D, &[3, 2], &[0; 24])));
    let idx_raw = idx_dir(&d.join("idx-raw"), &[4, 4], &[0, 1, 0], &[1], None);
    std::fs::remove_file(d.join("idx-raw/train-images-idx3-ubyte.gz")).unwrap();
    write(&d.join("idx-raw/train-images-idx3-ubyte"), idx_u8(&[3, 1000, 1000], &[1; 100]));
    let idx_empty = idx_dir(&d.join("idx-empty"), &[4, 4], &[0, 1, 0], &[1], None);
    write(&d.join("idx-empty/t10k-labels-idx1-ubyte.gz"), b"");
    let idx_missing = scratch("idx-missing");
    let idx_missing = idx_missing.to_str().unwrap().to_string();
    let idx_names = idx_dir(&d.join("idx-names"), &[4, 4], &[0, 1, 0], &[1], None);
    write(&d.join("idx-names/classes.txt"), b"a\n\xff\xfe\n".as_slice());
    let idx_zero = idx_dir(&d.join("idx-zero"), &[4, 4], &[0, 1, 0], &[1], None);
    write(&d.join("idx-zero/train-images-idx3-ubyte.gz"), gz(&idx_u8(&[3, 0], &[])));

    // Predict inputs.
    let img = write(&d.join("img.png"), png_image(16, 16));
    let huge_png = write(&d.join("huge.png"), png_header_only(100_000, 100_000));
    let not_png = write(&d.join("not.png"), "not a png");
    let cut_png = write(&d.join("cut.png"), &png_image(16, 16)[..40]);
    let wide_csv = write(&d.join("wide.csv"), "0.5,0.3,0.2\n0.1,0.2,0.3\n");
    let lie_idx = write(&d.join("lie.idx"), &lying);
    let wrong_idx = write(&d.join("wrong.idx"), idx_u8(&[2, 3, 3], &[0; 18]));
    let csv_model = write(&d.join("model.safetensors"), "0,1,2\n");
    let out = p("out");

    let cases = vec![
        // Flags: exit 2, the flag and the value named.
        case("batch -1", &["train", "--batch", "-1"], 2, &["--batch: -1 is invalid", "≥ 1"]),
        case("batch 0", &["train", "--batch", "0"], 2, &["--batch: 0 is invalid"]),
        case("batch huge", &["train", "--batch", "70000"], 2, &["--batch: 70000", "at most 65535"]),
        case("batch word", &["train", "--batch", "lots"], 2, &["--batch: lots", "`full`"]),
        case("epochs 0", &["train", "--epochs", "0"], 2, &["--epochs: 0 is invalid"]),
        case("epochs -3", &["train", "--epochs", "-3"], 2, &["--epochs: -3 is invalid"]),
        case("lr 0", &["train", "--lr", "0"], 2, &["--lr: 0 is invalid", "positive"]),
        case("lr -1", &["train", "--lr", "-1"], 2, &["--lr: -1 is invalid"]),
        case("lr nan", &["train", "--lr", "nan"], 2, &["--lr: nan is invalid"]),
        case("lr inf", &["train", "--lr", "inf"], 2, &["--lr: inf is invalid"]),
        case("momentum 1.5", &["train", "--momentum", "1.5"], 2, &["--momentum: 1.5", "[0, 1)"]),
        case("momentum -0.1", &["train", "--momentum", "-0.1"], 2, &["--momentum: -0.1"]),
        case("weight decay -1", &["train", "--weight-decay", "-1"], 2, &["--weight-decay: -1", "≥ 0"]),
        case("hidden 0", &["train", "--hidden", "0"], 2, &["--hidden: 0 is invalid"]),
        case("hidden -2", &["train", "--hidden", "8,-2"], 2, &["--hidden: -2 is invalid"]),
        case("hidden word", &["train", "--hidden", "wide"], 2, &["--hidden: wide"]),
        case("model token", &["train", "--model", "conv:32"], 2, &["--model: conv:32", "layer 1 `conv:32`"]),
        case("model unknown", &["train", "--model", "resnet"], 2, &["--model: resnet", "unknown layer"]),
        case("model open end", &["train", "--model", "conv:8:3,relu"], 2, &["--model", "does not end in `linear`"]),
        case("augment word", &["train", "--augment", "rotate"], 2, &["--augment: rotate", "`rotate`"]),
        case("augment shift", &["train", "--augment", "shift:99"], 2, &["--augment: shift:99", "1..=64"]),
        case("input 2 dims", &["train", "--input", "1,28"], 2, &["--input: 1,28", "C,H,W"]),
        case("classes 1", &["train", "--classes", "1"], 2, &["--classes: 1 is invalid", "2 to 65536"]),
        case("classes 1e9", &["train", "--classes", "1000000000"], 2, &["--classes: 1000000000", "65536"]),
        case("classes -3", &["train", "--classes", "-3"], 2, &["--classes: -3 is invalid"]),
        case("seed -1", &["train", "--seed", "-1"], 2, &["--seed: -1 is invalid"]),
        case("seed word", &["train", "--seed", "x"], 2, &["--seed: x is invalid"]),
        case("log-every 0", &["train", "--log-every", "0"], 2, &["--log-every: 0 is invalid"]),
        case("early-stop 0", &["train", "--early-stop", "0"], 2, &["--early-stop: 0 is invalid"]),
        case("early-stop -1", &["train", "--early-stop", "-1"], 2, &["--early-stop: -1 is invalid"]),
        case("limit 0", &["train", "--limit", "0"], 2, &["--limit: 0 is invalid"]),
        case("limit -5", &["train", "--limit", "-5"], 2, &["--limit: -5 is invalid"]),
        case("checkpoint-every 0", &["train", "--checkpoint-every", "0"], 2, &["--checkpoint-every: 0"]),
        case("stop-after -1", &["train", "--stop-after", "-1"], 2, &["--stop-after: -1 is invalid"]),
        case("shards 0", &["train", "--shards", "0"], 2, &["--shards: 0 is invalid", "≥ 1"]),
        case("shards word", &["train", "--shards", "two"], 2, &["--shards: two is invalid"]),
        case("shards over batch", &["train", "--shards", "4", "--batch", "3"], 1, &["--batch: 3", "--shards (4)"]),
        case("shards in sweep", &["sweep", "--lr", "0.1", "--shards", "2"], 2, &["--shards", "`wgtrain train` only"]),
        case("shards and mpi", &["train", "--shards", "2", "--distributed"], 2, &["--shards", "--distributed"]),
        case("step:0", &["train", "--schedule", "step:0:0.5"], 2, &["--schedule: step:0:0.5", "EVERY `0`"]),
        case("constant:5:7", &["train", "--schedule", "constant:5:7"], 2, &["--schedule: constant:5:7", "no arg"]),
        case("step:10", &["train", "--schedule", "step:10"], 2, &["--schedule: step:10", "2 arguments"]),
        case("step:2.5:0.1", &["train", "--schedule", "step:2.5:0.1"], 2, &["--schedule: step:2.5:0.1", "EVERY"]),
        case(
            "plateau:val, --val 0",
            &["train", "--val", "0", "--schedule", "plateau:val"],
            1,
            &["--schedule: plateau:val", "--val 0"],
        ),
        case("exp", &["train", "--schedule", "exp"], 2, &["--schedule: exp is invalid", "1 argument"]),
        case("exp:0", &["train", "--schedule", "exp:0"], 2, &["--schedule: exp:0 is invalid", "GAMMA"]),
        case("plateau factor", &["train", "--schedule", "plateau:2:1.5"], 2, &["plateau:2:1.5", "FACTOR"]),
        case("plateau extra", &["train", "--schedule", "plateau:2:0.5:0:9"], 2, &["plateau:2:0.5:0:9", "0 to 3"]),
        case("cosine -1", &["train", "--schedule", "cosine:-1"], 2, &["--schedule: cosine:-1", "WARMUP"]),
        case("cosine extra", &["train", "--schedule", "cosine:1:0:3"], 2, &["--schedule: cosine:1:0:3"]),
        case("schedule word", &["train", "--schedule", "wobble"], 2, &["--schedule: wobble", "unknown schedule"]),
        case("optimizer", &["train", "--optimizer", "rmsprop"], 2, &["--optimizer: rmsprop", "adam"]),
        case("device", &["train", "--device", "tpu"], 2, &["--device: tpu is invalid"]),
        case("data-mode", &["train", "--data-mode", "carrier-pigeon"], 2, &["--data-mode: carrier-pigeon"]),
        case("precision", &["train", "--precision", "f8"], 2, &["--precision: f8 is invalid", "f32, mixed"]),
        case(
            "mixed on cpu",
            &["train", "--device", "cpu", "--precision", "mixed", "--data", &ok4],
            1,
            &["--precision: mixed", "GPU"],
        ),
        case("adapter+cpu", &["train", "--device", "cpu", "--adapter", "llvmpipe"], 2, &["--adapter: llvmpipe"]),
        case("eval adapter+cpu", &["eval", &m4, "--device", "cpu", "--adapter", "x"], 2, &["--adapter: x"]),
        case("bench adapter+cpu", &["bench", "--devices", "cpu", "--adapter", "x"], 2, &["--adapter: x"]),
        case("bench steps 0", &["bench", "--steps", "0"], 2, &["--steps: 0 is invalid"]),
        case("bench warmup -1", &["bench", "--warmup", "-1"], 2, &["--warmup: -1 is invalid"]),
        case("predict show -1", &["predict", &m4, &img, "--show", "-1"], 2, &["--show: -1 is invalid"]),
        case("delimiter ab", &["train", "--delimiter", "ab"], 2, &["--delimiter: ab", "single ASCII character"]),
        case("delimiter digit", &["train", "--delimiter", "1"], 2, &["--delimiter: 1 is invalid"]),
        case("delimiter é", &["train", "--delimiter", "é"], 2, &["--delimiter: é is invalid"]),
        case("unknown flag", &["train", "--learning-rate", "1"], 2, &["--learning-rate"]),
        // CSV data: exit 1, the file, the line and the field named.
        case("no such csv", &["train", "--data", &p("nope.csv")], 1, &["nope.csv", "no such file"]),
        case("empty csv", &["train", "--device", "cpu", "--data", &empty], 1, &["empty.csv", "no data rows"]),
        case("blank csv", &["train", "--device", "cpu", "--data", &blank], 1, &["blank.csv", "no data rows"]),
        case("header only", &["train", "--device", "cpu", "--data", &header_only], 1, &["header-only.csv: no data"]),
        case("non-UTF-8", &["train", "--device", "cpu", "--data", &non_utf8], 1, &["latin1.csv: line 3", "UTF-8"]),
        case(
            "bad field",
            &["train", "--device", "cpu", "--data", &bad_field],
            1,
            &["bad-field.csv: line 3: column 2: `x`"],
        ),
        case(
            "short row",
            &["train", "--device", "cpu", "--data", &short_row],
            1,
            &["short-row.csv: line 3: 1 features"],
        ),
        case("empty field", &["train", "--device", "cpu", "--data", &empty_field], 1, &["line 2: column 2 is empty"]),
        case(
            "label -1",
            &["train", "--device", "cpu", "--data", &neg_label],
            1,
            &["neg-label.csv: line 2: label `-1`"],
        ),
        case(
            "label 1.5",
            &["train", "--device", "cpu", "--data", &frac_label],
            1,
            &["frac-label.csv: line 2", "`1.5`"],
        ),
        case(
            "label 10^6",
            &["train", "--device", "cpu", "--data", &huge_label],
            1,
            &["huge-label.csv", "label 1000000", "65536"],
        ),
        case(
            "one class",
            &["train", "--device", "cpu", "--data", &one_class],
            1,
            &["one-class.csv", "only one class (1)"],
        ),
        case(
            "bom one class",
            &["train", "--device", "cpu", "--data", &bom_one_class],
            1,
            &["bom-one.csv", "only one class (1)"],
        ),
        case(
            "nan",
            &["train", "--device", "cpu", "--data", &nan],
            1,
            &["nan.csv: line 2: column 2: `nan` is not finite"],
        ),
        case(
            "overflow",
            &["train", "--device", "cpu", "--data", &inf],
            1,
            &["inf.csv: line 2", "`1e39` is not finite"],
        ),
        case(
            "no features",
            &["train", "--device", "cpu", "--data", &no_features],
            1,
            &["no-features.csv: line 1", "no features"],
        ),
        case(
            "open quote",
            &["train", "--device", "cpu", "--data", &open_quote],
            1,
            &["open-quote.csv: line 1: column 2", "\\n"],
        ),
        case("one row", &["train", "--device", "cpu", "--data", &one_row], 1, &["one-row.csv", "at least 2 rows"]),
        case(
            "semicolons without --delimiter",
            &["train", "--device", "cpu", "--data", &semi],
            1,
            &["semi.csv: line 2", "no features"],
        ),
        case(
            "csv is a directory",
            &["train", "--device", "cpu", "--data", &a_dir],
            1,
            &["a-dir.csv", "expected train-images"],
        ),
        case(
            "test label 9",
            &["train", "--device", "cpu", "--data", &train3, "--test", &test9],
            1,
            &["test9.csv", "label 9", "never occurs in training"],
        ),
        case(
            "test width",
            &["train", "--device", "cpu", "--data", &train3, "--test", &test_wide],
            1,
            &["test-wide.csv", "3 features per row", "has 2"],
        ),
        case(
            "test bad field",
            &["train", "--device", "cpu", "--data", &train3, "--test", &bad_test],
            1,
            &["bad-test.csv: line 2", "`oops`"],
        ),
        case(
            "test missing",
            &["train", "--device", "cpu", "--data", &train3, "--test", &p("gone.csv")],
            1,
            &["gone.csv"],
        ),
        case(
            "--classes below labels",
            &["train", "--device", "cpu", "--data", &train3, "--classes", "2"],
            1,
            &["train3.csv", "has label 2", "2 classes"],
        ),
        // IDX data: exit 1, the file named.
        case(
            "--test with IDX",
            &["train", "--device", "cpu", "--data", &idx_ok, "--test", &train3],
            1,
            &["--test: ", "IDX"],
        ),
        case(
            "--delimiter with IDX",
            &["train", "--device", "cpu", "--data", &idx_ok, "--delimiter", ";"],
            1,
            &["--delimiter: ", "IDX"],
        ),
        case(
            "idx label vs classes.txt",
            &["train", "--device", "cpu", "--data", &idx_big_label],
            1,
            &["train-labels-idx1-ubyte.gz", "sample 3 has label 7", "classes.txt"],
        ),
        case(
            "idx label vs --classes",
            &["train", "--device", "cpu", "--data", &idx_ok, "--classes", "2"],
            1,
            &["train-labels-idx1-ubyte.gz", "sample 2 has label 2", "--classes"],
        ),
        case(
            "idx test label 9",
            &["train", "--device", "cpu", "--data", &idx_test9],
            1,
            &["t10k-labels-idx1-ubyte.gz", "label 9", "never occurs in training"],
        ),
        case(
            "idx one class",
            &["train", "--device", "cpu", "--data", &idx_one],
            1,
            &["train-labels-idx1-ubyte.gz", "only one class (1)"],
        ),
        case(
            "idx 14x56 vs 28x28",
            &["train", "--device", "cpu", "--data", &idx_shape],
            1,
            &["t10k-images-idx3-ubyte.gz", "14×56", "28×28"],
        ),
        case(
            "idx counts",
            &["train", "--device", "cpu", "--data", &idx_count],
            1,
            &["train-labels-idx1-ubyte.gz", "2 labels", "3 images"],
        ),
        case(
            "idx claims 10^9",
            &["train", "--device", "cpu", "--data", &idx_lie],
            1,
            &["train-labels-idx1-ubyte.gz", "60000 labels", "1000000 images"],
        ),
        case(
            "idx stream runs dry",
            &["train", "--device", "cpu", "--data", &idx_lie2],
            1,
            &["train-images-idx3-ubyte.gz", "1000000000 values", "only"],
        ),
        case(
            "idx truncated gzip",
            &["train", "--device", "cpu", "--data", &idx_trunc],
            1,
            &["train-images-idx3-ubyte.gz", "gzip"],
        ),
        case(
            "idx corrupt gzip",
            &["train", "--device", "cpu", "--data", &idx_corrupt],
            1,
            &["train-images-idx3-ubyte.gz"],
        ),
        case(
            "idx magic",
            &["train", "--device", "cpu", "--data", &idx_magic],
            1,
            &["train-images-idx3-ubyte.gz", "not an IDX file"],
        ),
        case(
            "idx f32",
            &["train", "--device", "cpu", "--data", &idx_type],
            1,
            &["train-images-idx3-ubyte.gz", "0x0d (f32)"],
        ),
        case(
            "idx raw short",
            &["train", "--device", "cpu", "--data", &idx_raw],
            1,
            &["train-images-idx3-ubyte:", "3000000 values", "holds 100"],
        ),
        case(
            "idx empty file",
            &["train", "--device", "cpu", "--data", &idx_empty],
            1,
            &["t10k-labels-idx1-ubyte.gz", "too short"],
        ),
        case(
            "idx missing files",
            &["train", "--device", "cpu", "--data", &idx_missing],
            1,
            &["idx-missing", "train-images-idx3-ubyte"],
        ),
        case(
            "idx classes.txt bytes",
            &["train", "--device", "cpu", "--data", &idx_names],
            1,
            &["classes.txt", "UTF-8"],
        ),
        case(
            "idx no features",
            &["train", "--device", "cpu", "--data", &idx_zero],
            1,
            &["train-images-idx3-ubyte.gz", "no samples or no features"],
        ),
        // Layer shapes: refused naming the layer, what it got and what it needs.
        case(
            "cnn on flat rows",
            &["train", "--device", "cpu", "--data", &ok4, "--model", "cnn", "--out", &out],
            1,
            &["layer 0 (conv:32:3:p1)", "[4]", "--input C,H,W"],
        ),
        case(
            "input size",
            &["train", "--device", "cpu", "--data", &ok4, "--input", "1,2,3", "--out", &out],
            1,
            &["--input: 1,2,3 is invalid", "C·H·W = 4 values"],
        ),
        case(
            "kernel too large",
            &["train", "--device", "cpu", "--data", &ok4, "--input", "1,2,2", "--model", "conv:8:3,flatten,linear"],
            1,
            &["layer 0 (conv:8:3)", "[1, 2, 2]", "3x3"],
        ),
        case(
            "linear after conv",
            &["train", "--device", "cpu", "--data", &ok64, "--input", "1,8,8", "--model", "conv:2:3,relu,linear"],
            1,
            &["layer 2 (linear:2)", "[2, 6, 6]", "flatten"],
        ),
        case(
            "augment flat rows",
            &["train", "--device", "cpu", "--data", &ok4, "--augment", "flip", "--out", &out],
            1,
            &["--augment: flip is invalid", "image samples"],
        ),
        // Memory: refused with the figures before anything is allocated.
        case(
            "memory",
            &["train", "--device", "cpu", "--hidden", "1000000", "--batch", "8192", "--out", &out],
            1,
            &["GiB of memory", "MemAvailable", "--hidden"],
        ),
        case(
            "parameters",
            &["train", "--device", "cpu", "--hidden", "3000000", "--out", &out],
            1,
            &["--hidden", "2^30 parameters"],
        ),
        // Predict: the model's width and the input's size named.
        case(
            "png for 4 features",
            &["predict", &m4, &img],
            1,
            &["img.png", "the model takes 4 features", "not a square image"],
        ),
        case("png 100000²", &["predict", &m64, &huge_png], 1, &["huge.png", "100000×100000", "8192×8192"]),
        case("not a png", &["predict", &m64, &not_png], 1, &["not.png", "not a readable PNG"]),
        case("cut png", &["predict", &m64, &cut_png], 1, &["cut.png", "PNG"]),
        case("csv width", &["predict", &m64, &wide_csv], 1, &["wide.csv", "3 features per row, the model takes 64"]),
        case("csv width, 4", &["predict", &m4, &wide_csv], 1, &["wide.csv", "3 features per row, the model takes 4"]),
        case(
            "predict lying idx",
            &["predict", &m64, &lie_idx],
            1,
            &["lie.idx", "IDX dimensions [1000000, 1000]", "64"],
        ),
        case("predict idx width", &["predict", &m64, &wrong_idx], 1, &["wrong.idx", "[2, 3, 3]", "64"]),
        case("predict dir", &["predict", &m64, &a_dir], 1, &["a-dir.csv", "a directory"]),
        case("predict missing", &["predict", &m64, &p("gone.png")], 1, &["gone.png"]),
        case("predict no model", &["predict", &p("no-model"), &img], 1, &["no-model"]),
        case("model not safetensors", &["predict", &csv_model, &img], 1, &["model.safetensors"]),
        case(
            "eval wrong data",
            &["eval", &m4, "--device", "cpu", "--data", &ok64],
            1,
            &["ok64.csv", "64 features", "takes 4"],
        ),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());

    let mut failures = Vec::new();
    let (mut peak, mut worst) = (children_peak_kib(), String::from("the model training"));
    for c in &cases {
        let (code, _, err) = run(&d, &c.args);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        let mut why = Vec::new();
        if code != Some(c.code) {
            why.push(format!("exit status {code:?}, expected {}", c.code));
        }
        if lines.len() != 1 {
            why.push(format!("{} error lines", lines.len()));
        }
        let line = lines.first().copied().unwrap_or_default();
        for w in &c.want {
            if !line.contains(w.as_str()) {
                why.push(format!("lacks `{w}`"));
            }
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            why.push("panicked".into());
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}\n    args {:?}\n    stderr: {}", c.name, why.join(", "), c.args, err.trim()));
        }
        let now = children_peak_kib();
        if now > peak {
            (peak, worst) = (now, c.name.clone());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{} bad inputs in {secs:.1} s; children's peak resident memory {:.0} MiB (first reached by `{worst}`)",
        cases.len(),
        peak as f64 / 1024.0
    );
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert!(peak < 1 << 20, "children peaked at {peak} KiB (`{worst}`), over 1 GiB");
}

#[test]
fn csv_with_a_bom_and_no_header_reads_every_row() {
    let p = Path::new("bom.csv");
    let d = csv::parse_bytes(p, "\u{feff}1,0.5,2\r\n0,1,3\r\n1,2,2\r\n".as_bytes(), b',').unwrap();
    assert_eq!((d.rows, d.width), (3, 2));
    assert_eq!(d.labels, vec![1, 0, 1]);
    // With a header after the mark, the header alone is dropped.
    let d = csv::parse_bytes(p, "\u{feff}label,a,b\n1,0.5,2\n0,1,3\n".as_bytes(), b',').unwrap();
    assert_eq!(d.rows, 2);
}

#[test]
fn csv_reads_quoted_fields_crlf_and_other_delimiters() {
    let p = Path::new("q.csv");
    let text = "\"label\";\"a\";\"b\"\r\n\"1\";\" 0.5\";2\r\n0;\"1\";3e0\r\n\r\n";
    let d = csv::parse_bytes(p, text.as_bytes(), b';').unwrap();
    assert_eq!((d.rows, d.width), (2, 2));
    assert_eq!(d.labels, vec![1, 0]);
    assert_eq!(d.features, FeatureData::F32(vec![0.5, 2.0, 1.0, 3.0]));
    let d = csv::parse_bytes(p, b"1\t0.5\t2\n0\t1\t3\n", b'\t').unwrap();
    assert_eq!(d.features, FeatureData::F32(vec![0.5, 2.0, 1.0, 3.0]));
    // A comma inside quotes is part of the field, not a separator: a bad number.
    let e = csv::parse_bytes(p, b"1,\"0,5\",2\n", b',').unwrap_err().to_string();
    assert!(e.contains("q.csv: line 1: column 2: `0,5` is not a number"), "{e}");
}

#[test]
fn the_delimiter_flag_reaches_the_reader_and_the_run_folder() {
    let d = scratch("delimiter");
    let rows: String = (0..20).map(|i| format!("{};\"{}\";{}\r\n", i % 2, i as f32 / 10.0, (i % 3) as f32)).collect();
    let data = write(&d.join("semi.csv"), format!("\u{feff}{rows}"));
    let out = d.join("run");
    let args: Vec<String> = ["train", "--device", "cpu", "--epochs", "1", "--hidden", "4", "--delimiter", ";"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--data".into(), data, "--out".into(), out.to_str().unwrap().into()])
        .collect();
    let (code, o, e) = run(&d, &args);
    assert_eq!(code, Some(0), "{o}\n{e}");
    // 20 rows: 4 for the test split, 1 of the other 16 held out for validation.
    assert!(o.contains("15 train / 1 validation / 4 test samples"), "every row read: {o}");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"delimiter\": \";\""), "{config}");
}
