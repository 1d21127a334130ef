//! Image augmentation (`--augment`): the CPU twin's draws and geometry, and the GPU
//! kernel held to it bit for bit over ragged shapes.

mod common;
use wgtrain::data::augment::{augment, Augment};
use wgtrain::gpu::conv_ops;

/// Distinct values, so a misplaced pixel cannot match by accident.
fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| 1.0 + i as f32).collect()
}

#[test]
fn parse_accepts_flip_and_shift_and_names_bad_tokens() {
    assert_eq!(Augment::parse("none").unwrap(), Augment::default());
    assert_eq!(Augment::parse("flip").unwrap(), Augment { flip: true, shift: 0 });
    assert_eq!(Augment::parse("flip,shift:2").unwrap(), Augment { flip: true, shift: 2 });
    assert_eq!(Augment::parse("shift:3").unwrap().to_string(), "shift:3");
    for bad in ["flop", "shift", "shift:0", "shift:-1", "shift:65", "flip,rotate"] {
        let e = Augment::parse(bad).unwrap_err();
        assert!(e.contains('`'), "{bad}: {e}");
    }
}

#[test]
fn the_draw_is_a_pure_function_of_seed_epoch_and_sample() {
    let a = Augment { flip: true, shift: 2 };
    let (c, h, w) = (2, 5, 6);
    let x = ramp(3 * c * h * w);
    let mut one = vec![0.0; x.len()];
    augment(&x, &mut one, &[10, 11, 12], (c, h, w), 7, 3, &a);
    // The same samples in another order (and alone) get the same images.
    let len = c * h * w;
    let mut swapped_x = x[len..2 * len].to_vec();
    swapped_x.extend_from_slice(&x[..len]);
    let mut two = vec![0.0; 2 * len];
    augment(&swapped_x, &mut two, &[11, 10], (c, h, w), 7, 3, &a);
    assert_eq!(&two[..len], &one[len..2 * len]);
    assert_eq!(&two[len..], &one[..len]);
    // Another epoch draws anew for some of 64 samples.
    let changed = (0..64).filter(|&s| a.draw(7, 3, s) != a.draw(7, 4, s)).count();
    assert!(changed > 32, "{changed}");
}

#[test]
fn draws_cover_both_flips_and_every_shift_and_nothing_else() {
    let a = Augment { flip: true, shift: 2 };
    let draws: Vec<_> = (0..2000).map(|s| a.draw(1, 0, s)).collect();
    let flips = draws.iter().filter(|d| d.0).count();
    assert!((800..1200).contains(&flips), "{flips} flips of 2000");
    for v in -2..=2 {
        assert!(draws.iter().any(|d| d.1 == v) && draws.iter().any(|d| d.2 == v), "shift {v} never drawn");
    }
    assert!(draws.iter().all(|d| (-2..=2).contains(&d.1) && (-2..=2).contains(&d.2)));
    let plain = Augment::default();
    assert!((0..100).all(|s| plain.draw(1, 0, s) == (false, 0, 0)));
}

#[test]
fn geometry_is_a_flip_then_a_zero_filled_shift() {
    let (c, h, w) = (1, 3, 4);
    let x = ramp(h * w);
    let a = Augment { flip: true, shift: 1 };
    // Find samples with the draws we want to check.
    let find = |want: (bool, i32, i32)| (0..10_000).find(|&s| a.draw(5, 0, s) == want).unwrap();
    let mut out = vec![0.0; h * w];
    augment(&x, &mut out, &[find((false, 0, 0))], (c, h, w), 5, 0, &a);
    assert_eq!(out, x);
    augment(&x, &mut out, &[find((true, 0, 0))], (c, h, w), 5, 0, &a);
    assert_eq!(out, [4., 3., 2., 1., 8., 7., 6., 5., 12., 11., 10., 9.]);
    augment(&x, &mut out, &[find((false, 1, -1))], (c, h, w), 5, 0, &a);
    // Down one row (top row zero), left one column (right column zero).
    assert_eq!(out, [0., 0., 0., 0., 2., 3., 4., 0., 6., 7., 8., 0.]);
}

#[test]
fn augment_matches_cpu() {
    let Some(gpu) = common::gpu() else { return };
    let mut cases = 0;
    for (c, h, w) in [(1, 1, 1), (1, 7, 7), (3, 7, 5), (1, 28, 28), (5, 2, 9)] {
        for a in [Augment { flip: true, shift: 0 }, Augment { flip: false, shift: 1 }, Augment { flip: true, shift: 3 }]
        {
            for batch in [1, 7] {
                let x = ramp(batch * c * h * w);
                let samples: Vec<u32> = (0..batch as u32).map(|n| 1000 + 37 * n).collect();
                let seed = 0x1_0000_0003 + cases as u64;
                let mut want = vec![0.0; x.len()];
                augment(&x, &mut want, &samples, (c, h, w), seed, 9, &a);
                let got = conv_ops::augment(gpu, &x, &samples, (c, h, w), seed, 9, &a).unwrap();
                assert_eq!(got, want, "[{c}, {h}, {w}] {a} B={batch}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 30);
}
