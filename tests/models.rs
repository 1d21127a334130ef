//! The model as a sequence of layers: the written form and its errors, shapes checked
//! layer by layer, the cnn preset's layout and cost, the names and metadata PyTorch
//! rebuilds it from, and the files written before layer sequences still reading.

use std::collections::HashMap;
use wgtrain::checkpoint;
use wgtrain::model::{Layer, Model, Shape, Spec};

const IMAGE: Shape = Shape::Image { c: 1, h: 28, w: 28 };

fn cnn() -> Model {
    Spec::parse("cnn", &[]).unwrap().build(IMAGE, 10).unwrap()
}

#[test]
fn the_cnn_preset_is_the_ten_layers_of_the_issue() {
    let m = cnn();
    assert_eq!(m.spec(), "conv:32:3:p1,relu,pool:2,conv:64:3:p1,relu,pool:2,flatten,linear:128,relu,linear:10");
    assert_eq!(m.layers.len(), 10);
    let names: Vec<(String, Vec<usize>)> = m.tensors().into_iter().map(|(n, s, _)| (n, s)).collect();
    let expected: Vec<(String, Vec<usize>)> = [
        ("0.weight", vec![32, 1, 3, 3]),
        ("0.bias", vec![32]),
        ("3.weight", vec![64, 32, 3, 3]),
        ("3.bias", vec![64]),
        ("7.weight", vec![128, 3136]),
        ("7.bias", vec![128]),
        ("9.weight", vec![10, 128]),
        ("9.bias", vec![10]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(names, expected);
    assert_eq!(m.param_count(), 32 * 9 + 32 + 64 * 32 * 9 + 64 + 3136 * 128 + 128 + 1280 + 10);
    assert_eq!(m.train_flops_per_sample(), 24_995_328);
    // Tensors tile the flat vector in order.
    let mut at = 0;
    for (_, shape, range) in m.tensors() {
        assert_eq!((range.start, range.len()), (at, shape.iter().product()));
        at = range.end;
    }
    assert_eq!(at, m.param_count());
}

#[test]
fn the_layer_list_is_pytorchs_own_terms() {
    let layers = cnn().torch_layers();
    let expected = serde_json::json!([
        {"layer": "Conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3, "stride": 1, "padding": 1},
        {"layer": "ReLU"},
        {"layer": "MaxPool2d", "kernel_size": 2},
        {"layer": "Conv2d", "in_channels": 32, "out_channels": 64, "kernel_size": 3, "stride": 1, "padding": 1},
        {"layer": "ReLU"},
        {"layer": "MaxPool2d", "kernel_size": 2},
        {"layer": "Flatten"},
        {"layer": "Linear", "in_features": 3136, "out_features": 128},
        {"layer": "ReLU"},
        {"layer": "Linear", "in_features": 128, "out_features": 10}
    ]);
    assert_eq!(layers, expected);
    assert_eq!(Model::from_torch_layers(IMAGE, &layers).unwrap(), cnn());
    // An MLP is the list it always was.
    let mlp = Model::mlp(IMAGE, &[256, 128], 10).unwrap();
    assert_eq!(mlp.mlp_sizes(), Some(vec![784, 256, 128, 10]));
    assert_eq!(
        mlp.torch_layers(),
        serde_json::json!([
            {"layer": "Linear", "in_features": 784, "out_features": 256}, {"layer": "ReLU"},
            {"layer": "Linear", "in_features": 256, "out_features": 128}, {"layer": "ReLU"},
            {"layer": "Linear", "in_features": 128, "out_features": 10}
        ])
    );
    let d = Spec::parse("conv:4:3,relu,dropout:0.25,flatten,linear", &[]).unwrap().build(IMAGE, 3).unwrap();
    assert_eq!(d.torch_layers()[2], serde_json::json!({"layer": "Dropout", "p": 0.25}));
    assert_eq!(Model::from_torch_layers(IMAGE, &d.torch_layers()).unwrap(), d);
}

#[test]
fn spec_errors_point_at_the_bad_token() {
    for (spec, token) in [
        ("conv:32", "layer 1 `conv:32`"),
        ("conv:32:3,relu,pool:0,flatten,linear", "layer 3 `pool:0`"),
        ("conv:8:3:q1,flatten,linear", "`q1`"),
        ("flatten,dropout:1.5,linear", "layer 2 `dropout:1.5`"),
        ("flatten,softmax,linear", "layer 2 `softmax`"),
        ("linear,relu,linear", "only the last linear"),
        ("conv:8:3,relu", "does not end in `linear`"),
    ] {
        let e = Spec::parse(spec, &[]).unwrap_err();
        assert!(e.contains(token), "{spec}: {e}");
    }
}

#[test]
fn shapes_are_checked_layer_by_layer_before_anything_is_allocated() {
    let build = |spec: &str, input: Shape| Spec::parse(spec, &[]).unwrap().build(input, 10).unwrap_err().to_string();
    let e = build("conv:8:3,relu,flatten,linear", Shape::Flat(784));
    assert!(e.contains("layer 0 (conv:8:3)") && e.contains("[784]") && e.contains("--input"), "{e}");
    let e = build("conv:8:3,relu,linear", IMAGE);
    assert!(e.contains("layer 2 (linear:10)") && e.contains("[8, 26, 26]") && e.contains("flatten"), "{e}");
    let e = build("conv:8:7,relu,conv:8:9,flatten,linear", Shape::Image { c: 1, h: 9, w: 9 });
    assert!(e.contains("layer 2 (conv:8:9)") && e.contains("[8, 3, 3]"), "{e}");
    let e = build("pool:4,pool:4,flatten,linear", Shape::Image { c: 3, h: 7, w: 7 });
    assert!(e.contains("layer 1 (pool:4)") && e.contains("[3, 1, 1]"), "{e}");
    // A kernel larger than the padded input is refused; padding makes it fit.
    assert!(build("conv:2:5,flatten,linear", Shape::Image { c: 1, h: 3, w: 3 }).contains("layer 0"));
    assert!(Spec::parse("conv:2:5:p1,flatten,linear", &[])
        .unwrap()
        .build(Shape::Image { c: 1, h: 3, w: 3 }, 10)
        .is_ok());
    // The last layer must give the classes.
    let e = Spec::parse("flatten,linear:7", &[]).unwrap().build(IMAGE, 10).unwrap_err().to_string();
    assert!(e.contains("7 class scores") && e.contains("10"), "{e}");
}

#[test]
fn relu_fuses_only_right_after_linear_or_conv() {
    let m = Spec::parse("conv:4:3,relu,pool:2,relu,dropout:0.5,flatten,linear:6,relu,linear", &[])
        .unwrap()
        .build(Shape::Image { c: 2, h: 9, w: 9 }, 3)
        .unwrap();
    let kinds: Vec<(usize, bool)> = m.nodes().iter().map(|n| (n.layer, n.relu)).collect();
    // conv (relu fused), pool, stand-alone relu, dropout, linear (relu fused), linear.
    assert_eq!(kinds, [(0, true), (2, false), (3, false), (4, false), (6, true), (8, false)]);
    assert!(matches!(m.nodes()[3].op, wgtrain::model::Op::Dropout { p } if p == 0.5));
    assert_eq!(m.summary().len(), 9);
}

#[test]
fn the_written_model_round_trips_and_old_configs_read_as_mlps() {
    let m = cnn();
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(
        json,
        r#"{"input":[1,28,28],"layers":"conv:32:3:p1,relu,pool:2,conv:64:3:p1,relu,pool:2,flatten,linear:128,relu,linear:10"}"#
    );
    assert_eq!(serde_json::from_str::<Model>(&json).unwrap(), m);
    // config.json before layer sequences: `"sizes": [784, 256, 128, 10]`.
    let old: Model = serde_json::from_str("[784, 256, 128, 10]").unwrap();
    assert_eq!(old.mlp_sizes(), Some(vec![784, 256, 128, 10]));
    assert_eq!(old.layers[..2], [Layer::Linear { out: 256 }, Layer::ReLU]);
    assert!(serde_json::from_str::<Model>(r#"{"input":[5],"layers":"conv:2:3,flatten,linear:2"}"#).is_err());
}

#[test]
fn weights_carry_their_layer_list_and_input_shape() {
    let dir = std::env::temp_dir().join(format!("wgtrain-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = cnn();
    let params: Vec<f32> = (0..m.param_count()).map(|i| i as f32 * 1e-6).collect();
    let input = r#"{"features":784,"shape":[1,28,28],"divide":255.0,"mean":[],"std":[]}"#;
    let meta = HashMap::from([(wgtrain::run::META_INPUT.to_string(), input.to_string())]);
    let path = dir.join("cnn.safetensors");
    checkpoint::save_weights(&path, &m, &params, meta).unwrap();
    let w = checkpoint::load_weights(&path).unwrap();
    assert_eq!(w.model, m);
    assert_eq!(w.params, params);
    let layers: serde_json::Value = serde_json::from_str(&w.metadata[checkpoint::MODEL_KEY]).unwrap();
    assert_eq!(layers, m.torch_layers());
    // Weights written before layer sequences (no layer list) read as the MLP of their shapes.
    let mlp = Model::from_sizes(&[6, 5, 3]).unwrap();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        mlp.tensors().into_iter().map(|(n, s, r)| (n, s, vec![0.5; r.len()])).collect();
    let views: Vec<(String, Vec<usize>, &[f32])> =
        tensors.iter().map(|(n, s, v)| (n.clone(), s.clone(), &v[..])).collect();
    let old = dir.join("old.safetensors");
    let sizes = HashMap::from([("wgtrain.sizes".to_string(), "[6,5,3]".to_string())]);
    std::fs::write(&old, checkpoint::to_bytes(&views, sizes).unwrap()).unwrap();
    assert_eq!(checkpoint::load_weights(&old).unwrap().model, mlp);
    // A layer list that does not fit the stored tensors is refused, naming the file.
    let mut bad = HashMap::new();
    bad.insert(checkpoint::MODEL_KEY.to_string(), "[{\"layer\":\"Conv2d\"}]".to_string());
    std::fs::write(&old, checkpoint::to_bytes(&views, bad).unwrap()).unwrap();
    let e = checkpoint::load_weights(&old).err().unwrap().to_string();
    assert!(e.contains("old.safetensors") && e.contains("wgtrain.model"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
