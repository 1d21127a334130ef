//! Same inputs, same adapter → same bits: for one op, and for ten SGD steps of a network.

mod common;
use wgtrain::gpu::net::{Features, GpuNet, Precision};
use wgtrain::model::Model;
use wgtrain::optim::{OptimKind, Optimizer};
use wgtrain::rng::Rng;
use wgtrain::verify::uniform;

#[test]
fn the_same_op_twice_gives_identical_bits() {
    let Some(gpu) = common::gpu() else { return };
    let mut rng = Rng::new(1, 0);
    let (b, i, o) = (257, 784, 129);
    let (x, w, bias) = (uniform(&mut rng, b * i, 1.0), uniform(&mut rng, o * i, 1.0), uniform(&mut rng, o, 1.0));
    let z1 = wgtrain::gpu::ops::fc_forward(gpu, &x, &w, &bias, b, i, o, true).unwrap();
    let z2 = wgtrain::gpu::ops::fc_forward(gpu, &x, &w, &bias, b, i, o, true).unwrap();
    assert!(z1.iter().zip(&z2).all(|(p, q)| p.to_bits() == q.to_bits()));
}

/// Ten SGD steps from a seeded start on seeded data.
fn ten_steps(gpu: &wgtrain::gpu::Gpu, kind: &str) -> Vec<f32> {
    let model = Model::from_sizes(&[20, 33, 17, 5]).unwrap();
    let mut rng = Rng::new(3, 0);
    let rows = 100;
    let pixels: Vec<u8> = (0..rows * 20).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u32> = (0..rows).map(|_| rng.below(5) as u32).collect();
    let opt = Optimizer::new(OptimKind::parse(kind).unwrap(), 0.05);
    let mut net = GpuNet::new(gpu, &model, &model.init(7), opt.kind, 32, Precision::F32).unwrap();
    let table = net.add_table(Features::U8(&pixels), &labels).unwrap();
    for t in 0..10u64 {
        let idx: Vec<u32> = (0..32).map(|i| ((t as u32) * 32 + i) % rows as u32).collect();
        net.train_step(table, &idx, &opt.step(t + 1, opt.lr)).unwrap();
    }
    net.read_params().unwrap()
}

#[test]
fn ten_sgd_steps_twice_give_identical_parameters() {
    let Some(gpu) = common::gpu() else { return };
    for kind in ["sgd", "adam"] {
        let a = ten_steps(gpu, kind);
        let b = ten_steps(gpu, kind);
        let init = Model::from_sizes(&[20, 33, 17, 5]).unwrap().init(7);
        assert!(a.iter().zip(&init).any(|(p, q)| p != q), "{kind}: the steps changed nothing");
        let diff = a.iter().zip(&b).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
        assert_eq!(diff, 0, "{kind}: {diff} parameters differ between two identical runs");
    }
}
