//! What a dispatch and a submission cost on this adapter, by themselves: the floor under
//! a training step of many tiny kernels (pure SGD, `--batch 1`).
//!
//! ```sh
//! cargo run --release --example dispatch_cost
//! ```
//!
//! Times `N` dispatches of a one-invocation kernel that writes one word of a read-write
//! storage buffer (so consecutive dispatches are ordered by a barrier, as a training
//! step's are), recorded in one pass and submitted once; then the same kernel one
//! dispatch per submission; then an empty pass per submission; then one dispatch of
//! many 64-invocation workgroups that do nothing (what a workgroup costs). Last, the
//! memory floor of the `small` model's first layer (`W: [256, 784]`) at `--batch 1`: one
//! dispatch that reads and writes every weight (what any SGD update costs) and one that
//! reads every weight into a dot product per row (what any forward product costs), each
//! in the best layout found for a software adapter (a long run of vec4s per invocation).

use std::time::Instant;
use wgtrain::gpu::{AdapterChoice, Gpu};

const SHADER: &str = "
@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn touch() { out[0] = out[0] + 1u; }
@compute @workgroup_size(64)
fn wide(@builtin(global_invocation_id) gid: vec3<u32>) { if (gid.x == 0xffffffffu) { out[1] = 1u; } }
";

/// The memory floor's matrix: `W: [OUT, IN]`.
const OUT: u64 = 256;
const IN: u64 = 784;

/// The memory floor's kernels on `W` and `x: [IN]` as vec4s, and `y: [OUT]`.
fn floor_shader() -> String {
    let (in4, quarter) = (IN / 4, IN / 16);
    format!(
        "
@group(0) @binding(0) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
// W[m, :] -= 0.01 y[m] x, a quarter row ({quarter} vec4s) per invocation.
@compute @workgroup_size(64)
fn update(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let m = gid.x / 4u;
    if (m >= {OUT}u) {{ return; }}
    let s = (gid.x % 4u) * {quarter}u;
    let g = vec4<f32>(0.01 * y[m]);
    for (var c = s; c < s + {quarter}u; c++) {{ w[m * {in4}u + c] -= g * x[c]; }}
}}
// y[m] = W[m, :]·x, a row per invocation.
@compute @workgroup_size(16)
fn dot_rows(@builtin(global_invocation_id) gid: vec3<u32>) {{
    if (gid.x >= {OUT}u) {{ return; }}
    var acc = vec4<f32>();
    for (var c = 0u; c < {in4}u; c++) {{ acc = fma(w[gid.x * {in4}u + c], x[c], acc); }}
    y[gid.x] = acc.x + acc.y + acc.z + acc.w;
}}
"
    )
}

fn main() -> wgtrain::error::Result<()> {
    let gpu = Gpu::new(&AdapterChoice::any())?;
    println!("{}", gpu.describe());
    let dev = &gpu.device;
    let pipe = |module: &wgpu::ShaderModule, entry: &str| {
        dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: None,
            module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    };
    let bind = |p: &wgpu::ComputePipeline, bufs: &[&wgpu::Buffer]| {
        let entries: Vec<wgpu::BindGroupEntry> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &entries,
        })
    };
    let storage = |bytes: u64| {
        dev.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    // Submits `n` dispatches of `groups` workgroups of `p` in one pass.
    let submit = |p: &wgpu::ComputePipeline, bg: &wgpu::BindGroup, groups: u32, n: usize| {
        let mut enc = dev.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..n {
                pass.set_pipeline(p);
                pass.set_bind_group(0, bg, &[]);
                pass.dispatch_workgroups(groups, 1, 1);
            }
        }
        gpu.queue.submit([enc.finish()]);
    };
    // µs per dispatch of `reps` dispatches in one pass (after one that compiles `p`).
    let time = |p: &wgpu::ComputePipeline, bg: &wgpu::BindGroup, groups: u32, reps: usize| {
        let mut per = 0.0;
        for n in [1, reps] {
            let t = Instant::now();
            submit(p, bg, groups, n);
            gpu.wait()?;
            per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        }
        wgtrain::error::Result::Ok(per)
    };

    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("touch"),
        source: wgpu::ShaderSource::Wgsl(SHADER.into()),
    });
    let buf = storage(16);
    let touch = pipe(&module, "touch");
    let bg = bind(&touch, &[&buf]);
    for &n in &[100usize, 1000, 4000] {
        let us = time(&touch, &bg, 1, n)?;
        println!("{n:>5} dispatches in one pass, one submit: {us:>8.1} µs per dispatch");
    }
    for &per in &[1usize, 18, 0] {
        let subs = 200;
        let t = Instant::now();
        for _ in 0..subs {
            submit(&touch, &bg, 1, per);
        }
        gpu.wait()?;
        let us = t.elapsed().as_secs_f64() * 1e6 / subs as f64;
        match per {
            0 => println!("{subs} submits of an empty pass: {us:>8.1} µs per submit"),
            _ => println!("{subs} submits of {per:>2} dispatches: {us:>8.1} µs per submit"),
        }
    }
    let wide = pipe(&module, "wide");
    let bg = bind(&wide, &[&buf]);
    for &groups in &[1u32, 256, 4096, 65535] {
        let us = time(&wide, &bg, groups, 20)?;
        println!(
            "one dispatch of {groups:>5} empty 64-wide workgroups: {us:>9.1} µs ({:.3} µs per workgroup)",
            us / f64::from(groups)
        );
    }

    let floor = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("floor"),
        source: wgpu::ShaderSource::Wgsl(floor_shader().into()),
    });
    let (w, x, y) = (storage(4 * OUT * IN), storage(4 * IN), storage(4 * OUT));
    let groups = (4 * OUT).div_ceil(64) as u32;
    for (entry, groups, what) in [
        ("update", groups, "read and write every weight"),
        ("dot_rows", OUT.div_ceil(16) as u32, "read every weight, a dot per row"),
    ] {
        let p = pipe(&floor, entry);
        let us = time(&p, &bind(&p, &[&w, &x, &y]), groups, 100)?;
        println!("{OUT}x{IN} weights, one dispatch to {what}: {us:>7.1} µs");
    }
    Ok(())
}
