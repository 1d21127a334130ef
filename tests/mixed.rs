//! Mixed precision (`--precision mixed`) end to end: a training step's gradient is the
//! composition of the f16 casts and the f32 products of the cast values, bit for bit (so
//! every operand is rounded where the design says, and nothing else is), training with it
//! learns like f32, and it is reproducible bit for bit. The casts and the f16 product
//! kernels have their own parity tests (`cast_f16_matches_cpu`,
//! `every_f16_gemm_variant_gives_the_f32_bits_of_its_rounded_operands` in `parity.rs`).

mod common;
use wgtrain::engine::{DataMode, Engine, GpuEngine};
use wgtrain::gpu::net::{Features, GpuNet, Precision};
use wgtrain::gpu::ops as gops;
use wgtrain::model::{Model, Shape};
use wgtrain::optim::{OptimKind, Optimizer, Schedule};
use wgtrain::train::{self, BatchSize, Config, Quiet};

/// On ragged widths (the generic and row kernels) and on widths of whole vec4s (the vec4
/// kernels), for a batch that reads `W` itself (3 rows) and ones that read the transposed
/// copy (9, 16 rows): `GpuNet`'s mixed gradient equals the composition bit for bit, and
/// differs from its f32 gradient (the rounding happened).
#[test]
fn mixed_gradient_is_the_composition_of_f16_casts_and_f32_products() {
    let Some(gpu) = common::f16_gpu() else { return };
    for ((inp, hidden, classes), batches) in [((21, 13, 5), [3, 9]), ((32, 16, 8), [3, 16])] {
        mixed_mlp_gradient_is_composed(gpu, (inp, hidden, classes), &batches);
    }
}

fn mixed_mlp_gradient_is_composed(
    gpu: &wgtrain::gpu::Gpu,
    (inp, hidden, classes): (usize, usize, usize),
    batches: &[usize],
) {
    let model = Model::mlp(Shape::Flat(inp), &[hidden], classes).unwrap();
    let mut rng = wgtrain::rng::Rng::new(3, 0);
    let params: Vec<f32> = model.init(4).iter().map(|p| p * 3.0).collect();
    for &batch in batches {
        let x = wgtrain::verify::uniform(&mut rng, batch * inp, 2.0);
        let y: Vec<u32> = (0..batch as u32).map(|i| (i * 7 + 1) % classes as u32).collect();
        let idx: Vec<u32> = (0..batch as u32).collect();
        let gradient = |precision| {
            let mut net = GpuNet::new(gpu, &model, &params, OptimKind::Sgd, batch, precision).unwrap();
            let t = net.add_table(Features::F32(&x), &y).unwrap();
            net.accumulate_gradient(t, &idx, 1.0 / batch as f32, true).unwrap();
            net.read_grads().unwrap()
        };
        let (mixed, f32) = (gradient(Precision::Mixed), gradient(Precision::F32));
        let want = common::composed_gradient(gpu, &model, &params, &x, &y, (inp, hidden, classes), true);
        common::assert_same_bits(&want, &mixed, &format!("{inp}-{hidden}-{classes}, batch {batch}: the gradient"));
        let rounded = (0..want.len()).filter(|&i| f32[i] != mixed[i]).count();
        assert!(
            rounded > want.len() / 2,
            "{inp}-{hidden}-{classes}, batch {batch}: only {rounded} values differ from f32's: were the operands cast?"
        );
    }
}

fn config(precision: Precision) -> Config {
    let s = common::fashion_mnist(3000, 1000);
    Config {
        model: Model::mlp(s.train.shape, &[64], s.train.classes).unwrap(),
        augment: Default::default(),
        epochs: 2,
        batch: BatchSize::Mini(32),
        optimizer: Optimizer::new(OptimKind::Adam { decoupled: false }, 1e-3),
        schedule: Schedule::Constant,
        seed: 5,
        log_every: 10,
        early_stop: None,
        precision,
    }
}

/// Two epochs on 3,000 Fashion-MNIST images: mixed precision ends within a point of f32's
/// test accuracy, and a second mixed run gives the same weights bit for bit.
#[test]
fn mixed_precision_learns_like_f32_and_is_reproducible() {
    let Some(gpu) = common::f16_gpu() else { return };
    let data = common::fashion_mnist(3000, 1000);
    let train_with = |precision| {
        let cfg = config(precision);
        let model = cfg.model.clone();
        let (kind, rows) = (cfg.optimizer.kind, cfg.max_batch());
        let mut e =
            GpuEngine::new(gpu, &model, &model.init(cfg.seed), kind, rows, &data.train, DataMode::Resident, precision)
                .unwrap();
        assert_eq!(e.describe().contains("mixed precision"), precision == Precision::Mixed);
        train::train(&cfg, &data, &mut e, None, &mut Quiet, None, &train::Control::default()).unwrap()
    };
    let (f32, mixed, again) = (train_with(Precision::F32), train_with(Precision::Mixed), train_with(Precision::Mixed));
    let acc = |o: &train::Outcome| o.epochs.last().unwrap().test_acc;
    assert!(acc(&mixed) > 0.7, "mixed precision reached only {}", acc(&mixed));
    assert!((acc(&mixed) - acc(&f32)).abs() <= 0.01, "test accuracy: mixed {} against f32 {}", acc(&mixed), acc(&f32));
    assert_ne!(mixed.params, f32.params, "mixed precision trained the f32 weights");
    common::assert_same_bits(&mixed.params, &again.params, "a second mixed-precision run's weights");
}

/// Two convolutions that take im2col (`K = C_in·k·k = 36`), then a Linear layer, on a
/// batch of 5: `GpuNet`'s mixed gradient equals the composition bit for bit — each im2col
/// path run on the cast input and weights (its GEMMs read the cast patches, `Wᵀ` and `W`;
/// patches of cast values are the cast patches), the second one's input gradient (the
/// GEMM on the f16 `W`) feeding the first's weight gradient, then the Linear layer as above.
#[test]
fn mixed_im2col_convolution_gradient_is_the_composition_of_f16_casts_and_f32_products() {
    use wgtrain::gpu::conv_ops;
    use wgtrain::model::{Op, Spec};
    let Some(gpu) = common::f16_gpu() else { return };
    let (c, hw, classes, batch) = (4, 6, 3, 5);
    let spec = "conv:4:3:p1,relu,conv:5:3:p1,relu,flatten,linear";
    let model = Spec::parse(spec, &[]).unwrap().build(Shape::Image { c, h: hw, w: hw }, classes).unwrap();
    let (nodes, len) = (model.nodes(), model.nodes().len());
    let (c1, c2, fc) = (nodes[0], nodes[1], nodes[len - 1]);
    let (Op::Conv2d(s1), Op::Conv2d(s2), Op::Linear { inp, .. }) = (c1.op, c2.op, fc.op) else {
        panic!("conv, conv, then linear: {model:?}")
    };
    let im2col = wgtrain::gpu::conv_im2col::im2col_wins;
    assert!(c1.relu && c2.relu && im2col(&s1) && im2col(&s2), "{model:?}");
    let (s1, s2) = (s1.with_batch(batch), s2.with_batch(batch));
    let mut rng = wgtrain::rng::Rng::new(8, 0);
    let params: Vec<f32> = model.init(6).iter().map(|p| p * 3.0).collect();
    let x = wgtrain::verify::uniform(&mut rng, batch * model.inputs(), 2.0);
    let y: Vec<u32> = (0..batch as u32).map(|i| (i * 2 + 1) % classes as u32).collect();
    let idx: Vec<u32> = (0..batch as u32).collect();
    let mut net = GpuNet::new(gpu, &model, &params, OptimKind::Sgd, batch, Precision::Mixed).unwrap();
    let t = net.add_table(Features::F32(&x), &y).unwrap();
    net.accumulate_gradient(t, &idx, 1.0 / batch as f32, true).unwrap();
    let got = net.read_grads().unwrap();

    let cast = |v: &[f32]| gops::cast_f16(gpu, v).unwrap();
    let zeros = |n: usize| vec![0.0f32; n];
    let weights = |n: &wgtrain::model::Node, len: usize| cast(&params[n.w_off..n.w_off + len]);
    let bias = |n: &wgtrain::model::Node, len: usize| params[n.b_off..n.b_off + len].to_vec();
    let (w1, w2, w3) = (weights(&c1, s1.weight_len()), weights(&c2, s2.weight_len()), weights(&fc, classes * inp));
    let (b1, b2, b3) = (bias(&c1, s1.c_out), bias(&c2, s2.c_out), bias(&fc, classes));
    // The im2col path of a convolution on the cast input: (z, dw, dx) for `dz`.
    let conv = |x: &[f32], w: &[f32], b: &[f32], dz: &[f32], a_prev: Option<&[f32]>, s| {
        let s: &wgtrain::cpu::conv::Conv2dShape = s;
        conv_ops::conv2d_im2col(gpu, &cast(x), w, b, dz, &zeros(s.weight_len()), a_prev, s, true, false).unwrap()
    };
    let (a1, _, _) = conv(&x, &w1, &b1, &zeros(batch * s1.out_len()), None, &s1);
    let (a2, _, _) = conv(&a1, &w2, &b2, &zeros(batch * inp), None, &s2);
    let a2_16 = cast(&a2);
    let z3 = gops::fc_forward(gpu, &a2_16, &w3, &b3, batch, inp, classes, false).unwrap();
    let (_, _, dz3) = gops::softmax_xent(gpu, &z3, &y, 1.0 / batch as f32, batch, classes).unwrap();
    let mut want = vec![0.0; model.param_count()];
    let mut put = |n: &wgtrain::model::Node, dw: &[f32], db: &[f32]| {
        want[n.w_off..n.w_off + dw.len()].copy_from_slice(dw);
        want[n.b_off..n.b_off + db.len()].copy_from_slice(db);
    };
    let dw3 = gops::fc_backward_weights(gpu, &dz3, &a2_16, &zeros(classes * inp), batch, inp, classes, false).unwrap();
    put(&fc, &dw3, &gops::fc_backward_bias(gpu, &dz3, &zeros(classes), batch, classes, false).unwrap());
    let dz2 = gops::fc_backward_input(gpu, &dz3, &w3, Some(&a2), batch, inp, classes).unwrap();
    let (_, dw2, dz1) = conv(&a1, &w2, &b2, &dz2, Some(&a1), &s2);
    put(&c2, &dw2, &conv_ops::conv2d_backward_bias(gpu, &dz2, &zeros(s2.c_out), &s2, false).unwrap());
    let (_, dw1, _) = conv(&x, &w1, &b1, &dz1, None, &s1);
    put(&c1, &dw1, &conv_ops::conv2d_backward_bias(gpu, &dz1, &zeros(s1.c_out), &s1, false).unwrap());
    common::assert_same_bits(&want, &got, "the gradient");
}
