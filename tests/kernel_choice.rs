//! The matrix products' kernels chosen by measurement (`gpu::choice`): measured once per
//! shape and adapter, cached, read back by the next process without measuring, and —
//! since every variant gives the same bits — the same weights as the fixed rule's.

mod common;
use std::path::Path;
use wgtrain::gpu::choice::{pick, KernelPolicy, MARGIN};
use wgtrain::gpu::net::{Features, GpuNet, Precision};
use wgtrain::gpu::{AdapterChoice, Gpu};
use wgtrain::model::Model;
use wgtrain::optim::{OptimKind, Optimizer};
use wgtrain::rng::Rng;

/// A fresh device (its own choices) with `policy` and the kernel cache in `cache`.
fn device(policy: KernelPolicy, cache: &Path) -> Option<Gpu> {
    common::gpu()?;
    let mut g = Gpu::new(&AdapterChoice::any()).unwrap();
    g.choices.configure(policy, Some(cache.to_path_buf()));
    Some(g)
}

/// Ten Adam steps of a small MLP (ragged widths, so aligned and unaligned products) on
/// seeded data, batches of 32 and a tail of 4.
fn ten_steps(gpu: &Gpu) -> Vec<u32> {
    let model = Model::from_sizes(&[20, 36, 17, 5]).unwrap();
    let mut rng = Rng::new(3, 0);
    let rows = 100;
    let pixels: Vec<u8> = (0..rows * 20).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(5) as u32).collect();
    let opt = Optimizer::new(OptimKind::parse("adam").unwrap(), 0.01);
    let mut net = GpuNet::new(gpu, &model, &model.init(7), opt.kind, 32, Precision::F32).unwrap();
    let table = net.add_table(Features::U8(&pixels), &labels).unwrap();
    for t in 0..10u64 {
        let b = if t == 9 { 4 } else { 32 };
        let idx: Vec<u32> = (0..b).map(|i| ((t as u32) * 32 + i) % rows as u32).collect();
        net.train_step(table, &idx, &opt.step(t + 1, opt.lr)).unwrap();
    }
    net.read_params().unwrap().iter().map(|p| p.to_bits()).collect()
}

#[test]
fn measured_choices_are_cached_and_change_no_bits() {
    let cache = std::env::temp_dir().join(format!("wgtrain-kernel-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let Some(first) = device(KernelPolicy::Auto, &cache) else { return };
    let measured = ten_steps(&first);
    let report = first.choices.report();
    let fresh: Vec<_> = report.iter().filter(|c| c.how == "measured").collect();
    assert!(!fresh.is_empty(), "nothing was measured: {report:?}");
    for c in &fresh {
        assert!(c.timings.iter().all(|(_, ms)| ms.is_finite()), "a variant never ran: {c:?}");
        let ms: Vec<f64> = c.timings.iter().map(|t| t.1).collect();
        assert_eq!(c.variant, c.timings[pick(&ms)].0, "not the pick of its timings: {c:?}");
    }
    let text = std::fs::read_to_string(cache.join("kernels.json")).unwrap();
    for c in &fresh {
        assert!(text.contains(&c.product), "{} not cached:\n{text}", c.product);
    }
    assert!(first.choices.summary().contains("measuring took"), "{}", first.choices.summary());

    // A second process: every measured product read from the cache, nothing measured.
    let second = device(KernelPolicy::Auto, &cache).unwrap();
    assert_eq!(ten_steps(&second), measured, "a cached choice changed the weights");
    let again = second.choices.report();
    for c in again.iter().filter(|c| c.how == "measured") {
        // Only a product the first process's budget left to the fixed rule is measured now.
        let was = report.iter().find(|r| r.product == c.product).map(|r| r.how);
        assert_eq!(was, Some("fixed"), "measured again: {c:?}");
    }
    for c in &fresh {
        let r = again.iter().find(|r| r.product == c.product).expect("the same products");
        assert_eq!((r.how, &r.variant), ("cached", &c.variant), "{}", c.product);
    }

    // The fixed rule: the same bits.
    let fixed = device(KernelPolicy::Fixed, &cache).unwrap();
    assert_eq!(ten_steps(&fixed), measured, "the fixed rule's kernels gave other weights");
    assert!(fixed.choices.report().iter().all(|c| c.how == "fixed"));
    let _ = std::fs::remove_dir_all(&cache);
}

/// The pick: the fastest variant only if it takes at most `MARGIN` of the fixed rule's
/// (the last) time, so a timing within the noise keeps the fixed rule.
#[test]
fn a_variant_replaces_the_fixed_rule_only_when_clearly_faster() {
    assert_eq!(MARGIN, 0.85);
    assert_eq!(pick(&[10.0]), 0);
    assert_eq!(pick(&[8.5, 9.0, 10.0]), 0, "at the margin");
    assert_eq!(pick(&[8.6, 9.0, 10.0]), 2, "inside the margin");
    assert_eq!(pick(&[30.0, 5.0, 10.0]), 1);
    assert_eq!(pick(&[4.0, 5.0, 10.0]), 0);
    assert_eq!(pick(&[f64::INFINITY, 10.0]), 1, "a variant that never ran");
    assert_eq!(pick(&[3.0, 9.0, 2.0]), 2, "the fixed rule fastest");
}

/// `measured`, the earlier name, is `auto`, which measures; `fixed` measures nothing.
#[test]
fn measured_is_auto() {
    use clap::ValueEnum;
    assert_eq!(KernelPolicy::from_str("measured", true), Ok(KernelPolicy::Auto));
    assert_eq!(KernelPolicy::from_str("auto", true), Ok(KernelPolicy::Auto));
    assert_eq!(KernelPolicy::from_str("fixed", true), Ok(KernelPolicy::Fixed));
    let Some(g) = common::gpu() else { return };
    let mut c = wgtrain::gpu::choice::Choices::new(&g.info);
    c.configure(KernelPolicy::Auto, None);
    assert!(c.measures());
    c.configure(KernelPolicy::Fixed, None);
    assert!(!c.measures());
}
