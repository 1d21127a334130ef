//! Every GPU kernel against its CPU twin over ragged shapes (widths 1, 3, 17, 100, 129,
//! 784; batches 1, 7, 128, 257): `<op>_matches_cpu` runs `verify::<op>`, which runs
//! `gpu::ops::<op>` and `cpu::ops::<op>` (the op table is in `src/gpu/kernels.rs`). The
//! bounds and why they hold are in `src/verify.rs`.

mod common;
use common::{assert_pass, gpu};
use wgtrain::gpu::gemm::{Gemm, GemmParams, Operands, SMALL_BATCH};
use wgtrain::gpu::kernels::TransposeParams;
use wgtrain::gpu::pipeline::Kernel;
use wgtrain::gpu::Gpu;
use wgtrain::optim::OptimKind;
use wgtrain::verify::{self, BATCHES, WIDTHS};

/// Every (batch, in, out) combination, with the fused option on for half of them.
fn shapes() -> impl Iterator<Item = (usize, usize, usize, bool)> {
    BATCHES.into_iter().flat_map(|b| {
        WIDTHS.into_iter().flat_map(move |i| WIDTHS.into_iter().map(move |o| (b, i, o, (b + i + o) % 2 == 0)))
    })
}

#[test]
fn fc_forward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = shapes().map(|(b, i, o, relu)| verify::fc_forward(gpu, b, i, o, relu, 1).unwrap()).collect();
    assert_pass(&out);
}

#[test]
fn fc_backward_weights_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> =
        shapes().map(|(b, i, o, acc)| verify::fc_backward_weights(gpu, b, i, o, acc, 2).unwrap()).collect();
    assert_pass(&out);
}

#[test]
fn fc_backward_bias_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for b in BATCHES {
        for o in WIDTHS {
            for acc in [false, true] {
                out.push(verify::fc_backward_bias(gpu, b, o, acc, 13).unwrap());
            }
        }
    }
    assert_pass(&out);
}

#[test]
fn fc_backward_input_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> =
        shapes().map(|(b, i, o, mask)| verify::fc_backward_input(gpu, b, i, o, mask, 3).unwrap()).collect();
    assert_pass(&out);
}

/// Every (rows, cols) pair of widths: the transposes' shapes.
fn matrices() -> impl Iterator<Item = (usize, usize)> {
    WIDTHS.into_iter().flat_map(|r| WIDTHS.into_iter().map(move |c| (r, c)))
}

/// Over the ragged shapes (`transpose`) and shapes of whole 8×8 blocks, which take
/// `transpose_u64` where the device has `SHADER_INT64`.
#[test]
fn transpose_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let blocks = [(8, 8), (8, 784), (784, 8), (128, 256), (256, 784), (24, 1024)];
    let out: Vec<_> = matrices().chain(blocks).map(|(r, c)| verify::transpose(gpu, r, c, 10).unwrap()).collect();
    assert_pass(&out);
    let u64_words = blocks
        .into_iter()
        .filter(|&(r, c)| {
            let t = TransposeParams { rows: r as u32, cols: c as u32, src_off: 0, dst_off: 0 };
            t.kernel(&gpu.kernels, None).0.name == "transpose_u64"
        })
        .count();
    let int64 = gpu.device.features().contains(wgpu::Features::SHADER_INT64);
    assert_eq!(u64_words, if int64 { blocks.len() } else { 0 }, "transposes transpose_u64 ran");
}

const RELU_LENS: [usize; 7] = [1, 3, 17, 100, 129, 784, 70_001];

#[test]
fn relu_forward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = RELU_LENS.iter().map(|&n| verify::relu_forward(gpu, n, 4).unwrap()).collect();
    assert_pass(&out);
}

#[test]
fn relu_backward_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> = RELU_LENS.iter().map(|&n| verify::relu_backward(gpu, n, 4).unwrap()).collect();
    assert_pass(&out);
}

const CLASSES: [usize; 6] = [2, 3, 10, 17, 100, 129];

#[test]
fn softmax_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for b in BATCHES {
        for c in CLASSES {
            out.push(verify::softmax(gpu, b, c, 5.0, 5).unwrap());
        }
    }
    assert_pass(&out);
}

#[test]
fn softmax_xent_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for b in BATCHES {
        for c in CLASSES {
            out.extend(verify::softmax_xent(gpu, b, c, 5.0, 6).unwrap());
        }
    }
    assert_pass(&out);
}

#[test]
fn accumulate_stats_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let out: Vec<_> =
        [1, 7, 128, 257, 4096].iter().flat_map(|&b| verify::accumulate_stats(gpu, b, 7).unwrap()).collect();
    assert_pass(&out);
}

#[test]
fn optimizer_update_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for kind in ["sgd", "momentum", "nesterov", "adam", "adamw"] {
        for len in [1, 3, 17, 129, 100_003] {
            out.extend(verify::optimizer_update(gpu, OptimKind::parse(kind).unwrap(), len, 8).unwrap());
        }
    }
    assert_pass(&out);
}

/// Rows and widths of the gathered tables: widths ≡ 0 (mod 4) run the `gather_u8` entry,
/// the others `gather_u8_unaligned`.
const TABLES: [(usize, usize); 6] = [(1, 1), (5, 3), (300, 17), (50, 129), (20, 12), (400, 784)];

#[test]
fn gather_u8_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for (rows, width) in TABLES {
        for b in BATCHES {
            out.extend(verify::gather_u8(gpu, rows, width, b, 9).unwrap());
        }
    }
    assert_pass(&out);
}

#[test]
fn gather_f32_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for (rows, width) in TABLES {
        for b in BATCHES {
            out.extend(verify::gather_f32(gpu, rows, width, b, 9).unwrap());
        }
    }
    assert_pass(&out);
}

/// `gemm_nn_row` (taken for A·B of fewer than 8 rows: `--batch 1` to 7) gives the bits of
/// the 8×8 `gemm_nn` it replaces, with the forward pass's bias and ReLU and the backward
/// pass's mask.
#[test]
fn gemm_nn_row_matches_the_8x8_kernel_bit_for_bit() {
    use wgtrain::gpu::gemm::GemmParams;
    let Some(gpu) = gpu() else { return };
    let mut rng = wgtrain::rng::Rng::new(21, 0);
    for m in 1..8 {
        for (inp, out) in [(784, 256), (256, 128), (3, 4), (17, 12)] {
            let fwd = GemmParams::fc_forward(m, inp, out, 0, 0, true);
            let bwd = GemmParams::fc_backward_input(m, out, inp, 0, true);
            for (name, g) in [("fc_forward", fwd), ("fc_backward_input", bwd)] {
                let p = g.params;
                let (rows, k, n) = (p.m as usize, p.k as usize, p.n as usize);
                let a = verify::uniform(&mut rng, rows * k, 1.0);
                let b = verify::uniform(&mut rng, k * n, 1.0);
                let extra = verify::uniform(&mut rng, rows * n, 1.0);
                let v = g.variants(&gpu.kernels);
                let names: Vec<&str> = v.iter().map(|v| v.1.name).collect();
                assert_eq!(names[names.len() - 2..], ["gemm_nn", "gemm_nn_row"], "{name} {m}×{k}·{k}×{n}");
                let run = |(_, kernel, groups): (&str, _, [u32; 3])| {
                    wgtrain::gpu::ops::time_gemm(gpu, kernel, groups, &g, &a, &b, &extra, &vec![0.0; rows * n], 1)
                        .unwrap()
                        .0
                };
                let (block, row) = (run(v[v.len() - 2]), run(v[v.len() - 1]));
                let differ = block.iter().zip(&row).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
                assert_eq!(differ, 0, "{name} {m}×{k}·{k}×{n}: {differ} elements differ");
            }
        }
    }
}

/// Every kernel that can compute a product — the workgroup-tiled one for hardware GPUs,
/// the subgroup one (where the adapter has subgroups: llvmpipe's are 8 wide), the
/// generic, the vec4, the 64-bit-word (where the adapter has `SHADER_INT64`) and the row
/// kernels — gives the generic kernel's bits, for the
/// three products of the layer with their epilogues (bias and ReLU, accumulate, mask),
/// over ragged shapes on both sides of the tile (64), the panel (16) and the subgroup's
/// chunk of K: whichever a measurement picks, a run computes the same numbers.
#[test]
fn every_gemm_variant_gives_the_generic_bits() {
    let Some(gpu) = gpu() else { return };
    let mut rng = wgtrain::rng::Rng::new(23, 0);
    let (mut tiled, mut subgroup, mut u64_loads) = (0, 0, 0);
    for batch in [1, 3, 7, 8, 65, 128] {
        for (inp, out) in [(784, 256), (17, 12), (100, 129), (64, 64), (3, 1), (20, 8), (16, 4)] {
            let forward = GemmParams::fc_forward(batch, inp, out, 0, 0, true);
            let [input, unmasked] = [true, false].map(|m| GemmParams::fc_backward_input(batch, inp, out, 0, m));
            let products = [
                ("fc_forward", forward),
                ("fc_forward from Xᵀ", forward.a_transposed()),
                ("fc_forward_w", GemmParams::fc_forward_w(batch, inp, out, 0, 0, true)),
                ("fc_backward_weights", GemmParams::fc_backward_weights(batch, inp, out, 0, true)),
                ("fc_backward_weights", GemmParams::fc_backward_weights(batch, inp, out, 0, false)),
                ("fc_backward_input", input),
                ("fc_backward_input from dZᵀ", input.a_transposed()),
                ("fc_backward_input from dZᵀ", unmasked.a_transposed()),
            ];
            for (name, g) in products {
                let p = g.params;
                let (rows, k, n) = (p.m as usize, p.k as usize, p.n as usize);
                let a = verify::uniform(&mut rng, rows * k, 1.0);
                let b = verify::uniform(&mut rng, k * n, 1.0);
                let extra = verify::uniform(&mut rng, (rows * n).max(n), 1.0);
                let c0 = verify::uniform(&mut rng, rows * n, 1.0);
                let v = g.variants(&gpu.kernels);
                let &(_, generic, groups) = v.iter().find(|v| v.1.name == "gemm").expect("the generic kernel");
                let fixed = g.kernel(&gpu.kernels).0.name;
                assert!(!["gemm_tiled", "gemm_subgroup"].contains(&fixed), "{name}: the fixed rule took {fixed}");
                let want = product(gpu, generic, groups, &g, &a, &b, &extra, &c0);
                for (variant, kernel, groups) in v.iter().filter(|v| v.1.name != "gemm") {
                    let got = product(gpu, kernel, *groups, &g, &a, &b, &extra, &c0);
                    let differ = want.iter().zip(&got).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
                    let shape = format!("{name} flags {} M={rows} N={n} K={k}", p.flags);
                    assert_eq!(differ, 0, "{shape}: {variant} differs from the generic kernel in {differ} elements");
                    tiled += usize::from(kernel.name == "gemm_tiled");
                    subgroup += usize::from(kernel.name == "gemm_subgroup");
                    u64_loads += usize::from(kernel.name == "gemm_tn_u64");
                }
            }
        }
    }
    assert_eq!(tiled, 6 * 7 * 8, "every product ran the tiled kernel");
    if wgtrain::gpu::kernels::subgroup_kernel_runs(&gpu.device) {
        assert!(gpu.kernels.gemms.subgroup.is_some(), "{} runs the subgroup kernel but has none", gpu.describe());
        assert!(subgroup >= 6 * 3 * 3, "the subgroup kernel ran {subgroup} products");
    }
    if gpu.device.features().contains(wgpu::Features::SHADER_INT64) {
        // Where every extent, offset and stride is a multiple of 8: both weight gradients of
        // (784, 256) and (64, 64) at every batch, and at batches 8 and 128 the forward
        // products from Xᵀ of 256, 64 and 8 outputs and both input gradients from dZᵀ of
        // 784, 64 and 16 inputs.
        assert_eq!(u64_loads, 2 * 2 * 6 + 2 * 3 + 2 * 3 * 2, "products the u64 kernel ran");
    }
}

/// A forward or input-gradient product computed from its `A` transposed (`Gemm::a_transposed`,
/// as a training step of whole vec4s runs it, reading `transpose`'s output) gives the bits
/// of the product itself, on the generic kernel and on the fixed rule's, over ragged shapes.
#[test]
fn products_from_the_transposed_input_give_the_same_bits() {
    let Some(gpu) = gpu() else { return };
    let mut rng = wgtrain::rng::Rng::new(24, 0);
    let mut transposed = 0;
    for batch in [5, 8, 12, 65, 128] {
        for (inp, out) in [(784, 256), (17, 12), (64, 64), (3, 1), (16, 4), (20, 8)] {
            for (name, g) in [
                ("fc_forward", GemmParams::fc_forward(batch, inp, out, 0, 0, true)),
                ("fc_backward_input", GemmParams::fc_backward_input(batch, inp, out, 0, true)),
                ("fc_backward_input", GemmParams::fc_backward_input(batch, inp, out, 0, false)),
            ] {
                let p = g.params;
                let (rows, k, n) = (p.m as usize, p.k as usize, p.n as usize);
                let a = verify::uniform(&mut rng, rows * k, 1.0);
                let b = verify::uniform(&mut rng, k * n, 1.0);
                let extra = verify::uniform(&mut rng, (rows * n).max(n), 1.0);
                let c0 = vec![0.0; rows * n];
                let a_t = wgtrain::gpu::ops::transpose(gpu, &a, rows, k).unwrap();
                let t = g.a_transposed();
                let generic = |g: &Gemm| *g.variants(&gpu.kernels).iter().find(|v| v.1.name == "gemm").unwrap();
                let (gn, gt) = (generic(&g), generic(&t));
                let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
                let want = bits(product(gpu, gn.1, gn.2, &g, &a, &b, &extra, &c0));
                let shape = format!("{name} flags {} M={rows} N={n} K={k}", p.flags);
                let got = bits(product(gpu, gt.1, gt.2, &t, &a_t, &b, &extra, &c0));
                assert_eq!(want, got, "{shape}: generic from Aᵀ");
                let (kernel, groups) = t.kernel(&gpu.kernels);
                let got = bits(product(gpu, kernel, groups, &t, &a_t, &b, &extra, &c0));
                assert_eq!(want, got, "{shape}: {} from Aᵀ", kernel.name);
                transposed += usize::from(g.transposes_a());
            }
        }
    }
    assert!(transposed >= 20, "only {transposed} products take the transposed form");
}

/// `cast_f16` (mixed precision's operands) over ragged lengths (llvmpipe has
/// `SHADER_F16`, so CI runs it).
#[test]
fn cast_f16_matches_cpu() {
    let Some(gpu) = common::f16_gpu() else { return };
    let out: Vec<_> =
        [1, 3, 4, 5, 17, 1000, 4097].iter().map(|&n| verify::cast_f16(gpu, n, n as u64).unwrap()).collect();
    assert_pass(&out);
}

/// The transpose with an f16 destination (mixed precision's `Wᵀ`) over ragged shapes.
#[test]
fn transpose_f16_matches_cpu() {
    let Some(gpu) = common::f16_gpu() else { return };
    let out: Vec<_> = matrices().map(|(r, c)| verify::transpose_f16(gpu, r, c, 11).unwrap()).collect();
    assert_pass(&out);
}

/// Every variant of every product, built for f16 operands (mixed precision's: `A` and `B`
/// f16 for the forward products, `B` alone for the gradients), gives on f16 values the
/// bits the generic f32 kernel gives on the same values widened: the kernels widen each
/// load and run the f32 fma chain. Ragged shapes as `every_gemm_variant_gives_the_generic_bits`.
#[test]
fn every_f16_gemm_variant_gives_the_f32_bits_of_its_rounded_operands() {
    let Some(gpu) = common::f16_gpu() else { return };
    gpu.kernels.half().unwrap();
    let mut rng = wgtrain::rng::Rng::new(29, 0);
    let mut ran = 0;
    for batch in [1, 3, 7, 65] {
        for (inp, out) in [(784, 256), (17, 12), (100, 129), (3, 1)] {
            let products = [
                (Operands::F16, GemmParams::fc_forward(batch, inp, out, 0, 0, true)),
                (Operands::F16, GemmParams::fc_forward_w(batch, inp, out, 0, 0, true)),
                (Operands::F32F16, GemmParams::fc_backward_weights(batch, inp, out, 0, true)),
                (Operands::F32F16, GemmParams::fc_backward_input(batch, inp, out, 0, true)),
            ];
            for (operands, g) in products {
                let p = g.params;
                let (rows, k, n) = (p.m as usize, p.k as usize, p.n as usize);
                let a = verify::uniform(&mut rng, rows * k, 1.0);
                let a = if operands == Operands::F16 { wgtrain::cpu::ops::cast_f16(&a) } else { a };
                let b = wgtrain::cpu::ops::cast_f16(&verify::uniform(&mut rng, k * n, 1.0));
                let extra = verify::uniform(&mut rng, (rows * n).max(n), 1.0);
                let c0 = verify::uniform(&mut rng, rows * n, 1.0);
                let v = g.variants(&gpu.kernels);
                let &(_, generic, groups) = v.iter().find(|v| v.1.name == "gemm").expect("the generic kernel");
                let want = product(gpu, generic, groups, &g, &a, &b, &extra, &c0);
                let half = g.with_operands(operands);
                for (variant, kernel, groups) in half.variants(&gpu.kernels) {
                    let got = product(gpu, kernel, groups, &half, &a, &b, &extra, &c0);
                    let differ = want.iter().zip(&got).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
                    let shape = format!("{operands:?} flags {} M={rows} N={n} K={k}", p.flags);
                    assert_eq!(differ, 0, "{shape}: {variant} differs from the f32 kernel in {differ} elements");
                    ran += 1;
                }
            }
        }
    }
    assert!(ran >= 4 * 4 * 4 * 2, "only {ran} f16 variants ran");
}

/// Batches of 1 to 7 rows, on both sides of `SMALL_BATCH` (the row kernels that read `W`
/// itself and store the weight gradient as vec4s up to it, `transpose` with the vec4 or
/// generic products past it), over ragged widths: the forward product (with and without
/// ReLU) and the weight gradient, overwriting and accumulating.
#[test]
fn small_batches_match_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for b in 1..8 {
        for i in [3, 17, 100, 784] {
            for o in [1, 17, 129] {
                out.push(verify::fc_forward(gpu, b, i, o, (b + i + o) % 2 == 0, 14).unwrap());
                for acc in [false, true] {
                    out.push(verify::fc_backward_weights(gpu, b, i, o, acc, 15).unwrap());
                }
            }
        }
    }
    assert_pass(&out);
}

/// Runs `kernel` over `groups` for the product `g` of `a` and `b`, with `extra` bound as
/// bias and mask and C starting as `c0`; returns C.
#[allow(clippy::too_many_arguments)]
fn product(
    gpu: &Gpu,
    kernel: &Kernel,
    groups: [u32; 3],
    g: &Gemm,
    a: &[f32],
    b: &[f32],
    extra: &[f32],
    c0: &[f32],
) -> Vec<f32> {
    wgtrain::gpu::ops::time_gemm(gpu, kernel, groups, g, a, b, extra, c0, 0).unwrap().0
}

#[test]
fn gemm_nt_row_and_gemm_tn_row_match_the_kernels_they_replace_bit_for_bit() {
    let Some(gpu) = gpu() else { return };
    let mut rng = wgtrain::rng::Rng::new(22, 0);
    let mut tn_rows = 0;
    for batch in 1..=SMALL_BATCH {
        for (inp, out) in [(784, 256), (256, 128), (128, 10), (3, 4), (17, 12), (20, 7), (1, 1), (129, 3)] {
            let shape = format!("B={batch} IN={inp} OUT={out}");
            let x = verify::uniform(&mut rng, batch * inp, 1.0);
            let w = verify::uniform(&mut rng, out * inp, 1.0);
            let bias = verify::uniform(&mut rng, out, 1.0);
            let mut wt = vec![0.0f32; out * inp];
            wgtrain::cpu::ops::transpose(&w, &mut wt, out, inp);
            let z0 = vec![0.0; batch * out];
            let on_wt = GemmParams::fc_forward(batch, inp, out, 0, 0, true);
            let on_w = GemmParams::fc_forward_w(batch, inp, out, 0, 0, true);
            let ((k_old, g_old), (k_new, g_new)) = (on_wt.kernel(&gpu.kernels), on_w.kernel(&gpu.kernels));
            assert_eq!(k_new.name, "gemm_nt_row", "{shape}");
            let old = product(gpu, k_old, g_old, &on_wt, &x, &wt, &bias, &z0);
            let new = product(gpu, k_new, g_new, &on_w, &x, &w, &bias, &z0);
            let differ = old.iter().zip(&new).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
            assert_eq!(differ, 0, "fc_forward {shape}: {differ} elements differ from {}", k_old.name);

            let dz = verify::uniform(&mut rng, batch * out, 1.0);
            let dw0 = verify::uniform(&mut rng, out * inp, 1.0);
            for acc in [false, true] {
                let g = GemmParams::fc_backward_weights(batch, inp, out, 0, acc);
                assert_eq!(g.tn_row(), inp % 4 == 0, "{shape}");
                if !g.tn_row() {
                    continue;
                }
                // The fixed rule's kernel but for the row one: vec4, or gemm_tn_u64 where
                // everything is a multiple of 8.
                let v = g.variants(&gpu.kernels);
                let ((_, k_old, g_old), (_, k_new, g_new)) = (v[v.len() - 2], v[v.len() - 1]);
                assert_eq!(k_new.name, "gemm_tn_row", "{shape}");
                let old = product(gpu, k_old, g_old, &g, &dz, &x, &[0.0], &dw0);
                let new = product(gpu, k_new, g_new, &g, &dz, &x, &[0.0], &dw0);
                let differ = old.iter().zip(&new).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
                assert_eq!(
                    differ, 0,
                    "fc_backward_weights {shape} acc={acc}: {differ} elements differ from {}",
                    k_old.name
                );
                tn_rows += 1;
            }
        }
    }
    assert_eq!(tn_rows, 2 * 4 * SMALL_BATCH, "the weight gradients gemm_tn_row took");
}

/// The fused SGD step of a layer (`gemm_tn_row_sgd`) against its CPU twin, batches 1 to
/// `SMALL_BATCH`, ragged OUT, IN ≡ 0 (mod 4).
#[test]
fn fc_sgd_step_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut out = Vec::new();
    for b in 1..=SMALL_BATCH {
        for i in [4, 20, 100, 784] {
            for o in [1, 3, 17, 129] {
                out.push(verify::fc_sgd_step(gpu, b, i, o, 16).unwrap());
            }
        }
    }
    assert_pass(&out);
}

/// The fused SGD step of a layer gives the bits of its separate kernels: the weight and
/// bias gradients (`gemm_tn_row`, `fc_backward_bias`), then `optimizer_update_sgd`, for
/// OUT a multiple of 4 or not (the last vec4 of the bias); and a step flagged bad (a
/// non-finite loss) changes nothing.
#[test]
fn fc_sgd_step_matches_the_separate_kernels_bit_for_bit() {
    use wgtrain::gpu::ops as gops;
    let Some(gpu) = gpu() else { return };
    let mut rng = wgtrain::rng::Rng::new(23, 0);
    let mut opt = wgtrain::optim::Optimizer::new(OptimKind::Sgd, 0.03);
    for (t, wd) in [(1, 0.0), (2, 5e-4)] {
        opt.weight_decay = wd;
        let st = opt.step(t, opt.lr);
        for batch in 1..=SMALL_BATCH {
            for (inp, out) in [(784, 256), (256, 128), (128, 10), (4, 1), (20, 7), (100, 17)] {
                let shape = format!("B={batch} IN={inp} OUT={out} λ={wd}");
                let dz = verify::uniform(&mut rng, batch * out, 1.0);
                let x = verify::uniform(&mut rng, batch * inp, 1.0);
                let p = verify::uniform(&mut rng, out * inp + out, 1.0);
                let fused = gops::fc_sgd_step(gpu, &dz, &x, &p, batch, inp, out, &st, false).unwrap();
                let zeros = vec![0.0; p.len()];
                let mut g =
                    gops::fc_backward_weights(gpu, &dz, &x, &zeros[..out * inp], batch, inp, out, false).unwrap();
                g.extend(gops::fc_backward_bias(gpu, &dz, &zeros[..out], batch, out, false).unwrap());
                let (separate, _, _) = gops::optimizer_update(gpu, &p, &g, &zeros, &zeros, &st, false).unwrap();
                let differ = fused.iter().zip(&separate).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{shape}: {differ} parameters differ");
                assert!(fused.iter().zip(&p).any(|(a, b)| a != b), "{shape}: the step changed nothing");
                let skipped = gops::fc_sgd_step(gpu, &dz, &x, &p, batch, inp, out, &st, true).unwrap();
                assert!(skipped.iter().zip(&p).all(|(a, b)| a.to_bits() == b.to_bits()), "{shape}: a bad step updated");
            }
        }
    }
}
