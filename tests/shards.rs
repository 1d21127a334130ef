//! Data-parallel training in one process (`--shards N`) and across ranks: shares give the
//! unsharded result up to rounding, the same bits every time, and ranks (here threads
//! behind a [`Collective`] of channels; the MPI one in tests/mpi.rs) give the bits of one
//! process holding all their shares.

mod common;
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use wgtrain::data::Split;
use wgtrain::engine::{CpuEngine, DataMode, Engine, GpuEngine};
use wgtrain::error::Result;
use wgtrain::gpu::net::Precision;
use wgtrain::model::{Model, Shape, Spec};
use wgtrain::optim::{OptimKind, Optimizer, Schedule};
use wgtrain::parallel::{self, Collective, Sharded};
use wgtrain::train::{self, BatchSize, Config, Control, Quiet};

/// 8,192 training samples: 64 steps of 128.
fn data() -> &'static Split {
    static S: OnceLock<Split> = OnceLock::new();
    S.get_or_init(|| common::fashion_mnist(8192, 300))
}

fn config(model: &str, batch: BatchSize, opt: &str, lr: f32) -> Config {
    Config {
        model: Spec::parse(model, &[256, 128]).unwrap().build(Shape::Image { c: 1, h: 28, w: 28 }, 10).unwrap(),
        augment: Default::default(),
        epochs: 1,
        batch,
        optimizer: Optimizer::new(OptimKind::parse(opt).unwrap(), lr),
        schedule: Schedule::Constant,
        seed: 5,
        log_every: 16,
        early_stop: None,
        precision: Default::default(),
    }
}

fn engine<'g>(cfg: &Config, gpu: Option<&'g wgtrain::gpu::Gpu>, data: &Split) -> Box<dyn Engine + 'g> {
    let (model, p) = (&cfg.model, cfg.model.init(cfg.seed));
    match gpu {
        Some(g) => Box::new(
            GpuEngine::new(
                g,
                model,
                &p,
                cfg.optimizer.kind,
                cfg.max_batch(),
                &data.train,
                DataMode::Resident,
                Precision::F32,
            )
            .unwrap(),
        ),
        None => Box::new(CpuEngine::new(model, p, cfg.optimizer.kind, cfg.max_batch())),
    }
}

/// Final weights and per-interval losses of `cfg` trained on `engine`.
fn train_on(cfg: &Config, engine: &mut dyn Engine) -> (Vec<f32>, Vec<f64>) {
    let out = train::train(cfg, data(), engine, None, &mut Quiet, None, &Control::default()).unwrap();
    (out.params, out.epochs.iter().map(|e| e.train_loss).collect())
}

fn sharded<'g>(cfg: &Config, gpu: Option<&'g wgtrain::gpu::Gpu>, shares: usize) -> Sharded<'g> {
    Sharded::new(engine(cfg, gpu, data()), shares, None).unwrap()
}

/// The largest difference over the largest weight, per tensor.
fn worst_relative(model: &Model, a: &[f32], b: &[f32]) -> f32 {
    model
        .tensors()
        .iter()
        .map(|(_, _, r)| {
            let big = a[r.clone()].iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = a[r.clone()].iter().zip(&b[r.clone()]).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            d / big
        })
        .fold(0.0, f32::max)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Panics with the number of values whose bits differ (not the values).
fn assert_same_bits(a: &[f32], b: &[f32], what: &str) {
    let differ = a.iter().zip(b).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
    assert!(a.len() == b.len() && differ == 0, "{what}: {differ} of {} values differ", a.len());
}

/// 64 SGD steps of 128 (8,192 samples) in 2 shares against one unsharded process: within
/// 1e-5 of the largest weight, per tensor, on both devices (7e-8 here); and 1 share is
/// the unsharded step, bit for bit. At α = 0.01: at 0.1 a rounding-sized difference can
/// flip a ReLU and SGD amplifies it (README, "Past one machine").
#[test]
fn two_shares_match_one_process_within_rounding() {
    let cfg = config("mlp", BatchSize::Mini(128), "sgd", 0.01);
    let mut devices = vec![None];
    devices.extend(common::gpu().map(Some));
    for gpu in devices {
        let (plain, _) = train_on(&cfg, engine(&cfg, gpu, data()).as_mut());
        let (two, _) = train_on(&cfg, &mut sharded(&cfg, gpu, 2));
        let (one, _) = train_on(&cfg, &mut sharded(&cfg, gpu, 1));
        let init = cfg.model.init(cfg.seed);
        assert!(worst_relative(&cfg.model, &plain, &init) > 1e-2, "training moved the weights");
        let rel = worst_relative(&cfg.model, &plain, &two);
        assert!(rel <= 1e-5, "gpu {}: 2 shares differ by {rel:e} of the largest weight", gpu.is_some());
        assert!(rel > 0.0, "2 shares add in another order, so some bits should differ");
        assert_same_bits(&plain, &one, &format!("gpu {}: 1 share against the plain step", gpu.is_some()));
    }
}

/// Ragged shares (batch 7 in 3 shares: 2, 2, 3 rows, and an epoch's tail batch of 2 rows
/// leaves a share empty), full batch in 3 shares, Adam: within rounding of one process,
/// and the same bits on a second run.
#[test]
fn ragged_shares_and_full_batch_stay_within_rounding() {
    let sub = |n: usize| {
        let d = data();
        Split { train: d.train.head(n), ..d.clone() }
    };
    let cases = [(BatchSize::Mini(7), 7 * 30 + 2), (BatchSize::Full, 2500)];
    for (batch, rows) in cases {
        let split = sub(rows);
        let cfg = config("mlp", batch, "adam", 1e-3);
        let run = |e: &mut dyn Engine| {
            let out = train::train(&cfg, &split, e, None, &mut Quiet, None, &Control::default()).unwrap();
            (out.params, out.epochs[0].train_loss)
        };
        let (plain, plain_loss) = run(engine(&cfg, None, &split).as_mut());
        let new = || Sharded::new(engine(&cfg, None, &split), 3, None).unwrap();
        let (a, a_loss) = run(&mut new());
        let (b, _) = run(&mut new());
        assert_same_bits(&a, &b, &format!("{batch:?}: two sharded runs"));
        let rel = worst_relative(&cfg.model, &plain, &a);
        assert!(rel <= 1e-5, "{batch:?}: 3 shares differ by {rel:e}");
        assert!((plain_loss - a_loss).abs() <= 1e-6 * plain_loss, "{batch:?}: risk {plain_loss} vs {a_loss}");
    }
}

/// A CNN with dropout and augmentation on the GPU: its draws are keyed by each sample's
/// index, so shares draw what the whole batch draws.
#[test]
fn gpu_cnn_with_dropout_and_augmentation_in_shares() {
    let Some(gpu) = common::gpu() else { return };
    let mut cfg = config("conv:4:3:p1, relu, pool:2, flatten, dropout:0.3, linear", BatchSize::Mini(32), "sgd", 0.05);
    cfg.augment = wgtrain::data::augment::Augment { flip: true, shift: 1 };
    let split = Split { train: data().train.head(32 * 12), ..data().clone() };
    let run =
        |e: &mut dyn Engine| train::train(&cfg, &split, e, None, &mut Quiet, None, &Control::default()).unwrap().params;
    let plain = run(engine(&cfg, Some(gpu), &split).as_mut());
    let two = run(&mut Sharded::new(engine(&cfg, Some(gpu), &split), 2, None).unwrap());
    let rel = worst_relative(&cfg.model, &plain, &two);
    assert!(rel <= 1e-5, "2 shares differ by {rel:e}");
}

/// Ranks as threads: each call waits for all ranks, then every rank reads all of them.
struct Threads {
    rank: usize,
    size: usize,
    barrier: Arc<Barrier>,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
}

impl Threads {
    fn world(size: usize) -> Vec<Threads> {
        let (barrier, slots) = (Arc::new(Barrier::new(size)), Arc::new(Mutex::new(vec![Vec::new(); size])));
        (0..size).map(|rank| Threads { rank, size, barrier: barrier.clone(), slots: slots.clone() }).collect()
    }

    fn exchange(&self, local: Vec<f64>) -> Vec<Vec<f64>> {
        self.barrier.wait();
        self.slots.lock().unwrap()[self.rank] = local;
        self.barrier.wait();
        let all = self.slots.lock().unwrap().clone();
        self.barrier.wait();
        all
    }
}

impl Collective for Threads {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.rank
    }
    fn abort(&self, code: i32) -> ! {
        panic!("rank {} aborted with {code}", self.rank)
    }
    fn ordered_sum(&self, local: &[f32], sum: &mut [f32]) -> Result<()> {
        let all = self.exchange(local.iter().map(|&x| f64::from(x)).collect());
        let parts: Vec<Vec<f32>> = all.iter().map(|v| v.iter().map(|&x| x as f32).collect()).collect();
        parallel::ordered_sum(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>(), sum)
    }
    fn all_gather(&self, local: &[f64]) -> Result<Vec<f64>> {
        Ok(self.exchange(local.to_vec()).concat())
    }
    fn broadcast(&self, v: &mut [f64]) -> Result<()> {
        let all = self.exchange(v.to_vec());
        v.copy_from_slice(&all[0]);
        Ok(())
    }
}

/// Three ranks, each holding one share on its own CPU engine, end with the weights and
/// the logged risks of one process holding all three shares — bit for bit, every rank.
#[test]
fn ranks_give_the_bits_of_one_process_with_their_shares() {
    let cfg = config("mlp", BatchSize::Mini(100), "adam", 1e-3);
    let split = Split { train: data().train.head(1234), ..data().clone() };
    let run = |e: &mut dyn Engine| {
        let out = train::train(&cfg, &split, e, None, &mut Quiet, None, &Control::default()).unwrap();
        (bits(&out.params), out.epochs.iter().map(|e| (e.train_loss.to_bits(), e.test_loss.to_bits())).collect())
    };
    let one: (Vec<u32>, Vec<(u64, u64)>) = run(&mut Sharded::new(engine(&cfg, None, &split), 3, None).unwrap());
    let ranks: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = Threads::world(3)
            .into_iter()
            .map(|comm| {
                let (cfg, split) = (&cfg, &split);
                s.spawn(move || {
                    let e = CpuEngine::new(&cfg.model, cfg.model.init(cfg.seed), cfg.optimizer.kind, cfg.max_batch());
                    let mut sharded = Sharded::new(Box::new(e), 1, Some(&comm)).unwrap();
                    let out = train::train(cfg, split, &mut sharded, None, &mut Quiet, None, &Control::default());
                    let out = out.unwrap();
                    (
                        bits(&out.params),
                        out.epochs.iter().map(|e| (e.train_loss.to_bits(), e.test_loss.to_bits())).collect(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (r, got) in ranks.iter().enumerate() {
        assert!(got == &one, "rank {r} differs from one process with 3 shares");
    }
}

#[test]
fn shares_split_rows_evenly_and_fingerprints_see_every_bit() {
    let sizes: Vec<usize> = (0..3).map(|r| parallel::share(7, 3, r).len()).collect();
    assert_eq!(sizes, [2, 2, 3]);
    assert_eq!(parallel::share(2, 3, 0), 0..0, "a tail batch smaller than the shares leaves one empty");
    assert_eq!((0..4).map(|r| parallel::share(128, 4, r).len()).sum::<usize>(), 128);
    let v = vec![1.0f32, -2.5, 3.25];
    let mut w = v.clone();
    w[1] = f32::from_bits(w[1].to_bits() ^ 1);
    assert_ne!(parallel::fingerprint(&v), parallel::fingerprint(&w));
    let mut sum = [0.0f32; 2];
    parallel::ordered_sum(&[&[1.0, 1e8], &[1e-8, -1e8], &[0.5, 1.0]], &mut sum).unwrap();
    assert_eq!(sum, [1.5, 1.0], "((1 + 1e-8) + 0.5) and ((1e8 − 1e8) + 1): rank order, not any other");
}
