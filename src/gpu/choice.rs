//! Which kernel computes each matrix product, chosen by measurement on the adapter at hand.
//!
//! Every variant of a product ([`Gemm::variants`]: the workgroup-tiled kernel, the
//! subgroup one where the adapter has subgroups, the generic one, the vec4, 64-bit-load
//! and row kernels) gives the same bits — `every_gemm_variant_gives_the_generic_bits` holds them to
//! it — so the choice is about speed alone and a run's numbers never depend on it. With
//! `--kernels auto` (the default, on every adapter), the first time a product of a given
//! shape is recorded on an adapter, each variant runs once to warm up (first-use costs
//! land there) and then [`REPS`] times, timed. The fastest wins if it takes at most
//! [`MARGIN`] of the fixed rule's time; otherwise the fixed rule's kernel stays ([`pick`]):
//! a timing on a busy machine (a software adapter shares the CPU with everything else)
//! cannot swap in a kernel that is only as fast, so a measured choice is never slower
//! than the fixed rule by more than that noise. The choice is cached in `kernels.json` of
//! the user's cache directory (`WGTRAIN_CACHE_DIR`, else `$XDG_CACHE_HOME/wgtrain`, else
//! `~/.cache/wgtrain`), keyed by the adapter, its driver, wgtrain's version and a hash of
//! the matrix-product shaders, then by the product; later runs read it and measure
//! nothing. The measuring is bounded: past [`BUDGET_S`] seconds in a process the product
//! being measured finishes on warm-up runs alone (every variant runs at least once) and
//! products not yet seen take the fixed rule, to be measured by a later run.
//! `--kernels fixed` (or `WGTRAIN_KERNELS=fixed`) takes [`Gemm::kernel`]'s fixed rule and
//! measures nothing.

use super::gemm::{Gemm, Operands};
use super::pipeline::Kernel;
use super::Gpu;
use crate::error::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Timed runs of each variant (in one submission), after one warm-up run.
pub const REPS: usize = 3;
/// Seconds of measuring a process spends at most.
pub const BUDGET_S: f64 = 1.0;
/// The share of the fixed rule's time a variant must take at most to replace it.
pub const MARGIN: f64 = 0.85;

/// How products pick their kernel (`--kernels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KernelPolicy {
    /// Measured (and cached) on the adapter; a variant replaces the fixed rule's kernel
    /// when it takes at most 85 % of its time.
    #[value(alias = "measured")]
    Auto,
    /// The fixed rule: vec4 when aligned to 4, 64-bit loads for `Aᵀ·B` aligned to 8 (where
    /// the adapter has SHADER_INT64), row kernels for small batches, else generic.
    Fixed,
}

impl KernelPolicy {
    /// `flag` if given, else `WGTRAIN_KERNELS` (auto or fixed), else `Auto`.
    pub fn from_flag_or_env(flag: Option<KernelPolicy>) -> KernelPolicy {
        use clap::ValueEnum;
        flag.or_else(|| {
            let v = std::env::var("WGTRAIN_KERNELS").ok()?;
            KernelPolicy::from_str(v.trim(), true).ok()
        })
        .unwrap_or(KernelPolicy::Auto)
    }
}

/// How one product's kernel was chosen.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Choice {
    /// The product: layout, shape, flags, strides and offsets.
    pub product: String,
    /// The variant's name (as `bench --gemm` prints it).
    pub variant: String,
    /// `measured`, `cached` or `fixed`.
    pub how: &'static str,
    /// What each variant took when measured (ms per run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<(String, f64)>,
}

/// The choices of one device: its policy, what it has chosen, the cache.
pub struct Choices {
    policy: KernelPolicy,
    cache_dir: Option<PathBuf>,
    /// The adapter's key in the cache file.
    adapter: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    chosen: BTreeMap<String, Choice>,
    /// The cache file's entries for this adapter (read on first need).
    cached: Option<BTreeMap<String, String>>,
    measuring_s: f64,
}

/// The default cache directory: `WGTRAIN_CACHE_DIR`, `$XDG_CACHE_HOME/wgtrain`, `~/.cache/wgtrain`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("WGTRAIN_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("wgtrain")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("wgtrain")))
}

/// FNV-1a of the matrix-product shaders: a changed kernel invalidates the cached choices.
fn shader_hash() -> u64 {
    let sources: [&str; 9] = [
        include_str!("../../shaders/gemm_common.wgsl"),
        include_str!("../../shaders/gemm_epilogue.wgsl"),
        include_str!("../../shaders/gemm.wgsl"),
        include_str!("../../shaders/gemm_block.wgsl"),
        include_str!("../../shaders/gemm_vec4.wgsl"),
        include_str!("../../shaders/gemm_u64.wgsl"),
        include_str!("../../shaders/gemm_tn_row.wgsl"),
        include_str!("../../shaders/gemm_tiled.wgsl"),
        include_str!("../../shaders/gemm_subgroup.wgsl"),
    ];
    crate::rng::fnv1a(sources.iter().flat_map(|s| s.bytes()))
}

impl Choices {
    pub fn new(info: &wgpu::AdapterInfo) -> Self {
        let adapter = format!(
            "{} | {:?} | {} {} | wgtrain {} | shaders {:016x} | margin {MARGIN}",
            info.name,
            info.backend,
            info.driver,
            info.driver_info,
            env!("CARGO_PKG_VERSION"),
            shader_hash()
        );
        Choices {
            policy: KernelPolicy::from_flag_or_env(None),
            cache_dir: default_cache_dir(),
            adapter,
            state: Mutex::default(),
        }
    }

    /// Sets the policy and the cache directory (`None`: no cache) for products not chosen yet.
    pub fn configure(&mut self, policy: KernelPolicy, cache_dir: Option<PathBuf>) {
        self.policy = policy;
        self.cache_dir = cache_dir;
    }

    /// Whether products are measured (rather than taking the fixed rule).
    pub fn measures(&self) -> bool {
        self.policy == KernelPolicy::Auto
    }

    /// Every choice made so far, by product.
    pub fn report(&self) -> Vec<Choice> {
        self.state.lock().map(|s| s.chosen.values().cloned().collect()).unwrap_or_default()
    }

    /// One line: the policy and how many products took which variant, how.
    pub fn summary(&self) -> String {
        let mut count: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for c in self.report() {
            *count.entry((c.variant, c.how)).or_default() += 1;
        }
        let parts: Vec<String> = count.iter().map(|((v, how), n)| format!("{n}× {v} ({how})")).collect();
        let policy = match self.policy {
            KernelPolicy::Auto => "auto",
            KernelPolicy::Fixed => "fixed",
        };
        let spent = self.state.lock().map_or(0.0, |s| s.measuring_s);
        let list = if parts.is_empty() { "none yet".into() } else { parts.join(", ") };
        match spent > 0.0 {
            true => format!("matrix-product kernels ({policy}): {list}; measuring took {spent:.2} s"),
            false => format!("matrix-product kernels ({policy}): {list}"),
        }
    }

    /// The run folder's record: the policy, the cache file and every choice.
    pub fn to_json(&self) -> String {
        let v = serde_json::json!({
            "policy": self.policy,
            "measured": self.measures(),
            "cache": self.cache_file(),
            "adapter": self.adapter,
            "choices": self.report(),
        });
        serde_json::to_string_pretty(&v).expect("serialises")
    }

    fn cache_file(&self) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join("kernels.json"))
    }

    /// The cache file's entries for this adapter (empty when there is none or it does not parse).
    fn read_cache(&self) -> BTreeMap<String, String> {
        let text = self.cache_file().and_then(|f| std::fs::read_to_string(f).ok()).unwrap_or_default();
        let all: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&text).unwrap_or_default();
        all.get(&self.adapter).cloned().unwrap_or_default()
    }

    /// Adds this adapter's `entries` to the cache file (re-read first, so other processes'
    /// entries stay); a cache that cannot be written is only a cache.
    fn write_cache(&self, entries: &BTreeMap<String, String>) {
        let Some(file) = self.cache_file() else { return };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut all: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_str(&text).unwrap_or_default();
        all.entry(self.adapter.clone()).or_default().extend(entries.clone());
        let json = serde_json::to_string_pretty(&all).expect("serialises");
        if std::fs::create_dir_all(file.parent().expect("a folder")).is_ok() {
            let _ = crate::files::write_atomic(&file, json.as_bytes());
        }
    }
}

/// The product's key: its layout, its operands' types (named only when f16) and every parameter (offsets decide alignment, so which
/// variants exist).
fn product_key(g: &Gemm) -> String {
    let p = &g.params;
    let operands = match g.operands {
        Operands::F32 => String::new(),
        o => format!(" {o:?}"),
    };
    format!(
        "{:?}{operands} M{} N{} K{} flags{} a{}+{}/{} b{}+{}/{} c{}+{} bias{} mask{}",
        g.layout,
        p.m,
        p.n,
        p.k,
        p.flags,
        p.a_off,
        p.a_sm,
        p.a_sk,
        p.b_off,
        p.b_sk,
        p.b_sn,
        p.c_off,
        p.c_sm,
        p.bias_off,
        p.mask_off
    )
}

/// A variant whose warm-up run takes this many times the best mean so far is not timed
/// further (a tiled kernel on llvmpipe would otherwise spend a second on one product).
const SLOWER: f64 = 3.0;

/// Times `variants` on zero operands of `g`'s extents, the fixed rule's (the last) first:
/// each a warm-up run, then the mean of [`REPS`] runs in one submission — unless its
/// warm-up took over [`SLOWER`]× the best mean so far or the runs would end past
/// `deadline`: then the warm-up's time is kept (an overestimate, a first run's costs
/// included). Every variant gets at least its warm-up, so a product measured when the
/// budget runs out still compares all its variants and is cached like the others (a
/// product of llvmpipe's `wide` takes longer to measure whole than the budget: left
/// unfinished, it was measured again by every run). Returns (name, ms) per variant, in
/// `variants`' order.
fn measure(
    gpu: &Gpu,
    g: &Gemm,
    variants: &[(&'static str, &Kernel, [u32; 3])],
    deadline: Instant,
) -> Result<Vec<(String, f64)>> {
    use super::buffers::{storage, storage_init, uniform};
    let p = &g.params;
    let span = |off: u32, n1: u32, s1: u32, n2: u32, s2: u32| {
        (off + n1.saturating_sub(1) * s1 + n2.saturating_sub(1) * s2 + 1) as usize
    };
    let c_len = span(p.c_off, p.m, p.c_sm, p.n, 1);
    let extra = c_len.max(span(p.mask_off, p.m, p.c_sm, p.n, 1)).max((p.bias_off + p.n) as usize);
    // f32 zeros: as f16 operands (half the bytes per value) the same buffers are only larger.
    let zeros = |n: usize| storage_init(gpu, "measured operand", &vec![0.0f32; n]);
    let (a, b) = (zeros(span(p.a_off, p.m, p.a_sm, p.k, p.a_sk))?, zeros(span(p.b_off, p.k, p.b_sk, p.n, p.b_sn))?);
    let (e, c) = (zeros(extra)?, storage(gpu, "measured product", (c_len * 4) as u64)?);
    let u = uniform(gpu, "gemm", &g.params);
    let runs = |d: &super::pipeline::Dispatch, n: usize| -> Result<f64> {
        let t = Instant::now();
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("measure") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for _ in 0..n {
                super::pipeline::record(&mut pass, std::slice::from_ref(d));
            }
        }
        gpu.queue.submit([enc.finish()]);
        gpu.wait()?;
        Ok(t.elapsed().as_secs_f64() * 1e3 / n as f64)
    };
    let mut out: Vec<(String, f64)> = variants.iter().map(|v| (v.0.to_string(), f64::INFINITY)).collect();
    let mut best = f64::INFINITY;
    for i in (0..variants.len()).rev() {
        let (_, kernel, groups) = variants[i];
        let d = kernel.dispatch(&gpu.device, &[&u, &a, &b, &e, &e, &c], groups);
        let warm = runs(&d, 1)?;
        let reps_end = Instant::now() + std::time::Duration::from_secs_f64(warm * REPS as f64 / 1e3);
        let ms = if warm > SLOWER * best || reps_end > deadline { warm } else { runs(&d, REPS)? };
        best = best.min(ms);
        out[i].1 = ms;
    }
    Ok(out)
}

/// The variant to run, from each variant's time in `ms` (the fixed rule's last, as
/// [`Gemm::variants`] orders them): the fastest, if it takes at most [`MARGIN`] of the
/// fixed rule's time; else the fixed rule's. (The rule is part of the cache's key, so a
/// choice made under another is measured again.)
///
/// # Panics
/// If `ms` is empty: every product has its fixed rule's kernel.
pub fn pick(ms: &[f64]) -> usize {
    let fixed = ms.len() - 1;
    let best = ms.iter().enumerate().min_by(|x, y| x.1.total_cmp(y.1)).map_or(fixed, |b| b.0);
    if ms[best] <= MARGIN * ms[fixed] {
        best
    } else {
        fixed
    }
}

impl Gpu {
    /// Sets how products pick their kernel: `flag` if given, else `WGTRAIN_KERNELS`, else auto.
    pub fn set_kernels(&mut self, flag: Option<KernelPolicy>) {
        let dir = self.choices.cache_dir.clone();
        self.choices.configure(KernelPolicy::from_flag_or_env(flag), dir);
    }

    /// The kernel for `g` and its grid, as this device's [`Choices`] say: the fixed rule,
    /// a cached choice, or one measured now (see the module's docs).
    pub fn gemm_kernel(&self, g: &Gemm) -> (&Kernel, [u32; 3]) {
        let variants = g.variants(&self.kernels);
        let fixed = *variants.last().expect("the generic kernel");
        let named = |name: &str| variants.iter().find(|v| v.0 == name).copied();
        let c = &self.choices;
        let key = product_key(g);
        let Ok(mut state) = c.state.lock() else { return (fixed.1, fixed.2) };
        if let Some(v) = state.chosen.get(&key).and_then(|ch| named(&ch.variant)) {
            return (v.1, v.2);
        }
        let record = |how, v: (&'static str, &Kernel, [u32; 3]), timings| Choice {
            product: key.clone(),
            variant: v.0.to_string(),
            how,
            timings,
        };
        if !c.measures() || variants.len() == 1 {
            state.chosen.insert(key.clone(), record("fixed", fixed, Vec::new()));
            return (fixed.1, fixed.2);
        }
        let cached = state.cached.get_or_insert_with(|| c.read_cache()).get(&key).and_then(|name| named(name));
        if let Some(v) = cached {
            state.chosen.insert(key.clone(), record("cached", v, Vec::new()));
            return (v.1, v.2);
        }
        if state.measuring_s > BUDGET_S {
            state.chosen.insert(key.clone(), record("fixed", fixed, Vec::new()));
            return (fixed.1, fixed.2);
        }
        let t = Instant::now();
        let deadline = t + std::time::Duration::from_secs_f64((BUDGET_S - state.measuring_s).max(0.0));
        let timings = measure(self, g, &variants, deadline);
        state.measuring_s += t.elapsed().as_secs_f64();
        let Ok(timings) = timings else {
            state.chosen.insert(key.clone(), record("fixed", fixed, Vec::new()));
            return (fixed.1, fixed.2);
        };
        let ms: Vec<f64> = timings.iter().map(|t| t.1).collect();
        let v = variants[pick(&ms)];
        state.cached.get_or_insert_with(BTreeMap::new).insert(key.clone(), v.0.to_string());
        c.write_cache(&BTreeMap::from([(key.clone(), v.0.to_string())]));
        state.chosen.insert(key.clone(), record("measured", v, timings));
        (v.1, v.2)
    }
}
