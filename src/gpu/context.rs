//! Adapter choice, device creation and limit checks.
//!
//! Preference: a hardware GPU (discrete, then integrated, then virtual), and a
//! software adapter (llvmpipe, `DeviceType::Cpu`) when allowed and nothing else exists.
//! `WGTRAIN_ADAPTER=<substring>` (or `--adapter`) picks by name, case-insensitively.
//! The device is requested with every limit the adapter has; what the network needs is
//! checked against them before any large buffer is made.

use crate::error::{Error, Result};
use crate::gpu::kernels::Kernels;
use std::sync::{Arc, Mutex};

/// Which adapter to take.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterChoice {
    /// A case-insensitive substring of the adapter's name.
    pub name: Option<String>,
    /// Whether a software adapter (llvmpipe) may be taken when no hardware GPU exists.
    pub allow_software: bool,
}

impl AdapterChoice {
    /// Any adapter, hardware first, `WGTRAIN_ADAPTER` honoured.
    pub fn any() -> Self {
        AdapterChoice { name: std::env::var("WGTRAIN_ADAPTER").ok().filter(|s| !s.is_empty()), allow_software: true }
    }
}

/// A device with its queue, the adapter's description and limits, and every kernel
/// compiled once.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub kernels: Kernels,
    /// Which kernel each matrix product runs ([`super::choice`]).
    pub choices: super::choice::Choices,
    /// Validation errors not caught by a scope land here instead of panicking.
    uncaptured: Arc<Mutex<Vec<String>>>,
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Hardware first: lower rank is preferred.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Every adapter wgpu sees, best first.
pub fn list_adapters() -> Vec<wgpu::Adapter> {
    let mut all = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    all.sort_by_key(|a| rank(a.get_info().device_type));
    all
}

/// Every adapter wgpu sees, a line each with its main limits (`wgtrain devices`).
pub fn adapters_report() -> String {
    let all = list_adapters();
    if all.is_empty() {
        return "no adapters found (on Linux: apt-get install mesa-vulkan-drivers libvulkan1)\n".into();
    }
    let mut s = String::new();
    for a in all {
        let (l, info) = (a.limits(), a.get_info());
        let subgroups = match a.features().contains(wgpu::Features::SUBGROUP) {
            true => format!("{}–{} lanes", info.subgroup_min_size, info.subgroup_max_size),
            false => "none".into(),
        };
        s += &format!(
            "{}\n    max binding {} MiB, max buffer {} MiB, {} storage buffers/stage, {} KiB workgroup memory, \
             {} invocations/workgroup, timestamps: {}, subgroups: {subgroups}, f16 (--precision mixed): {}, \
             int64 (the 64-bit-word kernels): {}\n",
            describe(&info),
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
            a.features().contains(wgpu::Features::SHADER_F16),
            a.features().contains(wgpu::Features::SHADER_INT64)
        );
    }
    s
}

/// Whether an adapter is a software rasterizer running on the CPU.
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// One line describing an adapter: name, type, backend, driver.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?}, driver {} {})", info.name, info.device_type, info.backend, info.driver, info.driver_info)
}

impl Gpu {
    /// Opens the adapter `choice` picks and compiles every kernel.
    pub fn new(choice: &AdapterChoice) -> Result<Self> {
        let adapters = list_adapters();
        let seen: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let pick = adapters.into_iter().find(|a| {
            let info = a.get_info();
            match &choice.name {
                Some(n) => info.name.to_lowercase().contains(&n.to_lowercase()),
                None => choice.allow_software || !is_software(&info),
            }
        });
        let adapter = pick.ok_or_else(|| {
            let seen = if seen.is_empty() { "none".to_string() } else { seen.join(", ") };
            Error::NoAdapter(match &choice.name {
                Some(n) => format!("no adapter's name contains `{n}` (adapters seen: {seen})"),
                None if choice.allow_software => format!(
                    "wgpu found no adapter (adapters seen: {seen}); on Linux install a Vulkan driver, \
                     e.g. `apt-get install mesa-vulkan-drivers libvulkan1` for the software one"
                ),
                None => format!("no hardware GPU (adapters seen: {seen})"),
            })
        })?;
        Self::open(adapter)
    }

    /// Opens a device on `adapter` with all of its limits.
    pub fn open(adapter: wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SUBGROUP
            | wgpu::Features::SHADER_F16
            | wgpu::Features::SHADER_INT64;
        let features = adapter.features() & wanted;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Gpu(format!("requesting a device on {}: {e}", describe(&info))))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let kernels = Kernels::new(&device)?;
        let choices = super::choice::Choices::new(&info);
        Ok(Gpu { device, queue, info, limits, features, kernels, choices, uncaptured })
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    pub fn is_software(&self) -> bool {
        is_software(&self.info)
    }

    /// Fails with the first validation error wgpu reported outside a scope, if any.
    pub fn check_errors(&self) -> Result<()> {
        let mut v = self.uncaptured.lock().map_err(|_| Error::Gpu("error log poisoned".into()))?;
        let first = v.drain(..).next();
        match first {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// Checks that one binding of `bytes` fits the adapter.
    pub fn check_binding(&self, what: &str, bytes: u64) -> Result<()> {
        let allowed = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        if bytes > allowed {
            return Err(Error::LimitExceeded {
                limit: "max_storage_buffer_binding_size",
                needed: bytes,
                allowed,
                hint: format!(
                    "{what} is too large for one binding on {}; use a smaller batch or layer",
                    self.info.name
                ),
            });
        }
        Ok(())
    }

    /// Checks a dispatch's workgroup count along one dimension.
    pub fn check_workgroups(&self, what: &str, count: u64) -> Result<()> {
        let allowed = u64::from(self.limits.max_compute_workgroups_per_dimension);
        if count > allowed {
            return Err(Error::LimitExceeded {
                limit: "max_compute_workgroups_per_dimension",
                needed: count,
                allowed,
                hint: format!("{what}; use a smaller batch"),
            });
        }
        Ok(())
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the device: {e}")))
    }
}

/// Where to train or evaluate, as `--device` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceKind {
    /// A hardware GPU if there is one, else the CPU (a software adapter such as llvmpipe
    /// is many times slower than the CPU path).
    Auto,
    /// A GPU adapter, software ones included.
    Gpu,
    /// The CPU path.
    Cpu,
}

impl Gpu {
    /// Opens the adapter whose name contains `adapter` (else `WGTRAIN_ADAPTER`, else the
    /// best one, hardware first).
    pub fn named(adapter: Option<&str>) -> Result<Self> {
        let mut choice = AdapterChoice::any();
        if let Some(a) = adapter {
            choice.name = Some(a.to_string());
        }
        Gpu::new(&choice)
    }

    /// As [`choose`](Self::choose), for the `nth` process on this machine (an MPI rank's
    /// local rank): without `--adapter` or `WGTRAIN_ADAPTER`, the adapters `choose` picks
    /// among — hardware GPUs, or for `--device gpu` on a machine without one every
    /// adapter, each device once whatever backends show it — are dealt out round robin.
    pub fn choose_nth(kind: DeviceKind, adapter: Option<&str>, nth: usize) -> Result<(Option<Gpu>, Option<String>)> {
        if nth == 0 || kind == DeviceKind::Cpu || adapter.is_some() || AdapterChoice::any().name.is_some() {
            return Gpu::choose(kind, adapter);
        }
        let all = list_adapters();
        let hardware = all.iter().filter(|a| !is_software(&a.get_info())).count();
        let mut pool: Vec<wgpu::Adapter> = match (hardware, kind) {
            (0, DeviceKind::Auto) => return Gpu::choose(kind, adapter),
            (0, _) => all,
            _ => all.into_iter().filter(|a| !is_software(&a.get_info())).collect(),
        };
        // One entry per device: a GPU seen through two backends (Vulkan and GL) is one GPU.
        let mut seen = std::collections::HashSet::new();
        pool.retain(|a| {
            let i = a.get_info();
            seen.insert((i.vendor, i.device, i.name))
        });
        let count = pool.len();
        match pool.into_iter().nth(nth % count.max(1)) {
            Some(a) => Ok((Some(Gpu::open(a)?), None)),
            None => Gpu::choose(kind, adapter),
        }
    }

    /// The GPU `kind` asks for (`None`: the CPU), and a line saying why when `auto` chose.
    pub fn choose(kind: DeviceKind, adapter: Option<&str>) -> Result<(Option<Gpu>, Option<String>)> {
        match kind {
            DeviceKind::Cpu => Ok((None, None)),
            DeviceKind::Gpu => Ok((Some(Gpu::named(adapter)?), None)),
            DeviceKind::Auto if adapter.is_some() || AdapterChoice::any().name.is_some() => {
                Ok((Some(Gpu::named(adapter)?), None))
            }
            DeviceKind::Auto => match list_adapters().into_iter().find(|a| !is_software(&a.get_info())) {
                Some(a) => {
                    let gpu = Gpu::open(a)?;
                    let why = format!("device: {} (a hardware GPU)", gpu.describe());
                    Ok((Some(gpu), Some(why)))
                }
                None => Ok((
                    None,
                    Some(
                        "device: CPU — no hardware GPU found, and a software adapter (llvmpipe) is many times \
                         slower than the CPU path; use --device gpu to train on it anyway"
                            .into(),
                    ),
                )),
            },
        }
    }
}
