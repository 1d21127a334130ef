use clap::{Parser, Subcommand};
use std::process::ExitCode;
use wgtrain::gpu::{context, AdapterChoice, Gpu};
use wgtrain::verify;

#[derive(Parser)]
#[command(name = "wgtrain", version, about = "Train MLP classifiers on any GPU through wgpu compute shaders")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every op on the CPU and the GPU over the test shapes, plus a gradient check.
    Verify {
        /// Adapter name substring (default: WGTRAIN_ADAPTER, else the best adapter).
        #[arg(long)]
        adapter: Option<String>,
    },
    /// List the adapters wgpu sees and their main limits.
    Devices,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Verify { adapter }) => run_verify(adapter),
        Some(Command::Devices) => {
            devices();
            Ok(true)
        }
        None => Ok(true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn choice(adapter: Option<String>) -> AdapterChoice {
    let mut c = AdapterChoice::any();
    if adapter.is_some() {
        c.name = adapter;
    }
    c
}

fn devices() {
    let all = context::list_adapters();
    if all.is_empty() {
        println!("no adapters found (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)");
    }
    for a in all {
        let info = a.get_info();
        let l = a.limits();
        println!("{}", context::describe(&info));
        println!(
            "    max binding {} MiB, max buffer {} MiB, {} storage buffers/stage, {} KiB workgroup memory, {} invocations/workgroup, timestamps: {}",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY)
        );
    }
}

fn run_verify(adapter: Option<String>) -> wgtrain::Result<bool> {
    let gpu = Gpu::new(&choice(adapter))?;
    println!("adapter: {}", gpu.describe());
    let t = std::time::Instant::now();
    let outcomes = verify::all(&gpu, |what| eprintln!("checking {what} …"))?;
    print!("{}", verify::table(&outcomes));
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.pass).collect();
    for o in failed.iter().take(5) {
        print!("{}", o.report());
    }
    println!(
        "{} checks, {} failed, {:.1} s",
        outcomes.len(),
        failed.len(),
        t.elapsed().as_secs_f64()
    );
    Ok(failed.is_empty())
}
