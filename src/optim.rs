//! Optimizers and learning-rate schedules: configuration, and the per-step
//! hyper-parameters (`OptimStep`) that both the CPU twin and the GPU kernel consume.

use serde::{Deserialize, Serialize};

/// Which update rule (see `cpu::ops::optimizer_update` for the math). Recorded as the
/// CLI spells it (`"adam"`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum OptimKind {
    Sgd,
    /// Heavy-ball momentum with PyTorch's semantics (dampening 0), optionally Nesterov.
    Momentum {
        nesterov: bool,
    },
    /// Adam with bias correction; `decoupled` gives AdamW's weight decay.
    Adam {
        decoupled: bool,
    },
}

impl OptimKind {
    /// Every rule, in the order `--help` lists them.
    pub const ALL: [OptimKind; 5] = [
        OptimKind::Sgd,
        OptimKind::Momentum { nesterov: false },
        OptimKind::Momentum { nesterov: true },
        OptimKind::Adam { decoupled: false },
        OptimKind::Adam { decoupled: true },
    ];

    /// Parses a [`name`](Self::name): `sgd`, `momentum`, `nesterov`, `adam`, `adamw`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            OptimKind::Sgd => "sgd",
            OptimKind::Momentum { nesterov: false } => "momentum",
            OptimKind::Momentum { nesterov: true } => "nesterov",
            OptimKind::Adam { decoupled: false } => "adam",
            OptimKind::Adam { decoupled: true } => "adamw",
        }
    }

    /// How many state vectors of the parameters' size the rule keeps (0, 1 or 2).
    pub fn state_vectors(self) -> usize {
        match self {
            OptimKind::Sgd => 0,
            OptimKind::Momentum { .. } => 1,
            OptimKind::Adam { .. } => 2,
        }
    }
}

/// An optimizer's configuration (the learning rate here is the base rate; the
/// schedule scales it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    pub kind: OptimKind,
    pub lr: f32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Optimizer {
    /// PyTorch's defaults for the rule: momentum 0.9, β = (0.9, 0.999), ε = 1e-8, no decay
    /// (AdamW: 0.01).
    pub fn new(kind: OptimKind, lr: f32) -> Self {
        Optimizer {
            kind,
            lr,
            momentum: 0.9,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: if kind == (OptimKind::Adam { decoupled: true }) { 0.01 } else { 0.0 },
        }
    }

    /// The hyper-parameters of update number `t` (1-based) at learning rate `lr`.
    pub fn step(&self, t: u64, lr: f32) -> OptimStep {
        OptimStep {
            kind: self.kind,
            lr,
            momentum: self.momentum,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            t,
        }
    }
}

/// Everything one update needs, for the CPU twin and the GPU uniform alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimStep {
    pub kind: OptimKind,
    pub lr: f32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// 1-based update count, for Adam's bias correction.
    pub t: u64,
}

impl OptimStep {
    /// `1 − β₁ᵗ`, computed in `f64` and rounded once.
    pub fn bias_correction1(&self) -> f32 {
        (1.0 - f64::from(self.beta1).powf(self.t as f64)) as f32
    }

    /// `1 − β₂ᵗ`, computed in `f64` and rounded once.
    pub fn bias_correction2(&self) -> f32 {
        (1.0 - f64::from(self.beta2).powf(self.t as f64)) as f32
    }
}

/// Learning-rate schedules. Epoch-based rules change the rate at epoch boundaries;
/// cosine and warmup move it every step. Shown and recorded as the CLI spells them
/// (`cosine`, `step:10:0.5`), arguments that keep their defaults left off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Schedule {
    Constant,
    /// `α · γ^⌊epoch / every⌋`.
    Step {
        every: usize,
        gamma: f32,
    },
    /// `α · γ^epoch`.
    Exponential {
        gamma: f32,
    },
    /// Linear warmup from 0 over `warmup` epochs, then half a cosine from `α` to `min_lr`
    /// over the remaining steps.
    Cosine {
        warmup: f32,
        min_lr: f32,
    },
    /// Multiply by `factor` when the training risk (the lecture's rule: "when L_T levels
    /// off, decrease α"), or with `on_val` the validation loss, has not improved (by a
    /// relative 1e-4) for `patience` epochs, never below `min_lr`.
    Plateau {
        patience: usize,
        factor: f32,
        min_lr: f32,
        on_val: bool,
    },
}

impl Schedule {
    /// Parses `constant`, `step:EVERY:GAMMA`, `exp:GAMMA`, `cosine[:WARMUP[:MIN]]`,
    /// `plateau[:PATIENCE[:FACTOR[:MIN]]]`, strictly: exactly those arguments, EVERY a
    /// whole number ≥ 1, PATIENCE a whole number, GAMMA in (0, 1], FACTOR in (0, 1),
    /// WARMUP (epochs) and MIN ≥ 0.
    pub fn parse(s: &str) -> Result<Self, String> {
        const FORMS: &str = "constant, step:EVERY:GAMMA, exp:GAMMA, cosine[:WARMUP_EPOCHS[:MIN_LR]] or \
                             plateau[:val][:PATIENCE[:FACTOR[:MIN_LR]]]";
        let mut parts = s.split(':');
        let name = parts.next().unwrap_or("");
        let mut args: Vec<&str> = parts.collect();
        // `plateau:val…` watches the validation loss instead of the training risk.
        let on_val = name == "plateau" && args.first() == Some(&"val");
        if on_val {
            args.remove(0);
        }
        let form = match name {
            "constant" => "constant",
            "step" => "step:EVERY:GAMMA",
            "exp" => "exp:GAMMA",
            "cosine" => "cosine[:WARMUP_EPOCHS[:MIN_LR]]",
            "plateau" => "plateau[:val][:PATIENCE[:FACTOR[:MIN_LR]]]",
            _ => return Err(format!("unknown schedule `{name}`: expected {FORMS}")),
        };
        let (least, most) = match name {
            "constant" => (0, 0),
            "step" => (2, 2),
            "exp" => (1, 1),
            "cosine" => (0, 2),
            _ => (0, 3),
        };
        if args.len() < least || args.len() > most {
            return Err(format!("{name} takes {}, given {}: expected {form}", count(least, most), args.len()));
        }
        // Argument `i` (named `what`), checked by `ok` (described by `range`), or `default`.
        let num = |i: usize, what: &str, default: f32, range: &str, ok: &dyn Fn(f32) -> bool| match args.get(i) {
            None => Ok(default),
            Some(a) => a
                .parse::<f32>()
                .ok()
                .filter(|&v| v.is_finite() && ok(v))
                .ok_or_else(|| format!("{what} `{a}` is not {range} (in {form})")),
        };
        let whole = |i: usize, what: &str, default: usize, least: usize| match args.get(i) {
            None => Ok(default),
            Some(a) => a
                .parse::<usize>()
                .ok()
                .filter(|&v| v >= least)
                .ok_or_else(|| format!("{what} `{a}` is not a whole number ≥ {least} (in {form})")),
        };
        let non_neg = |v: f32| v >= 0.0;
        let sched = match name {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step {
                every: whole(0, "EVERY", 10, 1)?,
                gamma: num(1, "GAMMA", 0.1, "a positive number", &|v| v > 0.0)?,
            },
            "exp" => Schedule::Exponential { gamma: num(0, "GAMMA", 0.9, "a positive number", &|v| v > 0.0)? },
            "cosine" => Schedule::Cosine {
                warmup: num(0, "WARMUP_EPOCHS", 0.0, "a number ≥ 0", &non_neg)?,
                min_lr: num(1, "MIN_LR", 0.0, "a number ≥ 0", &non_neg)?,
            },
            _ => Schedule::Plateau {
                patience: whole(0, "PATIENCE", 2, 0)?,
                factor: num(1, "FACTOR", 0.1, "in (0, 1)", &|v| v > 0.0 && v < 1.0)?,
                min_lr: num(2, "MIN_LR", 1e-6, "a number ≥ 0", &non_neg)?,
                on_val,
            },
        };
        Ok(sched)
    }
}

/// "no arguments", "2 arguments", "0 to 3 arguments".
fn count(least: usize, most: usize) -> String {
    match (least, most) {
        (0, 0) => "no arguments".into(),
        (1, 1) => "1 argument".into(),
        (l, m) if l == m => format!("{l} arguments"),
        (l, m) => format!("{l} to {m} arguments"),
    }
}

/// A schedule in motion: the base rate, the schedule, and reduce-on-plateau's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub base: f32,
    pub schedule: Schedule,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    /// Reduce-on-plateau's current rate, best risk, and epochs without improvement.
    pub plateau_lr: f32,
    pub best: Option<f64>,
    pub bad_epochs: usize,
}

impl LrSchedule {
    pub fn new(base: f32, schedule: Schedule, epochs: usize, steps_per_epoch: usize) -> Self {
        LrSchedule {
            base,
            schedule,
            epochs,
            steps_per_epoch: steps_per_epoch.max(1),
            plateau_lr: base,
            best: None,
            bad_epochs: 0,
        }
    }

    /// The rate for step `step` (0-based, counted over the whole run).
    pub fn lr(&self, step: u64) -> f32 {
        let spe = self.steps_per_epoch as f64;
        let epoch = (step as f64 / spe).floor();
        let base = f64::from(self.base);
        let lr = match self.schedule {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => base * f64::from(gamma).powf((epoch / every as f64).floor()),
            Schedule::Exponential { gamma } => base * f64::from(gamma).powf(epoch),
            Schedule::Cosine { warmup, min_lr } => {
                let warm = f64::from(warmup) * spe;
                let total = (self.epochs as f64 * spe).max(1.0);
                let s = step as f64;
                if s < warm {
                    base * (s + 1.0) / warm
                } else {
                    let frac = ((s - warm) / (total - warm).max(1.0)).min(1.0);
                    let min = f64::from(min_lr);
                    min + (base - min) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos())
                }
            }
            Schedule::Plateau { .. } => f64::from(self.plateau_lr),
        };
        lr as f32
    }

    /// Feeds the epoch's training risk to reduce-on-plateau; returns the new rate when it
    /// was reduced.
    pub fn end_epoch(&mut self, risk: f64) -> Option<f32> {
        let Schedule::Plateau { patience, factor, min_lr, .. } = self.schedule else {
            return None;
        };
        if self.best.is_none_or(|b| risk < b * (1.0 - 1e-4)) {
            self.best = Some(risk);
            self.bad_epochs = 0;
            return None;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > patience && self.plateau_lr > min_lr {
            self.plateau_lr = (self.plateau_lr * factor).max(min_lr);
            self.bad_epochs = 0;
            return Some(self.plateau_lr);
        }
        None
    }
}

/// `--optimizer` takes an [`OptimKind`] by its [`name`](OptimKind::name).
impl clap::ValueEnum for OptimKind {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

impl From<OptimKind> for String {
    fn from(k: OptimKind) -> String {
        k.name().to_string()
    }
}

impl TryFrom<String> for OptimKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        OptimKind::parse(&s).ok_or_else(|| format!("unknown optimizer `{s}`"))
    }
}

impl std::fmt::Display for Schedule {
    /// The schedule as `--schedule` takes it; trailing arguments equal to their defaults
    /// are left off.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, args, defaults): (&str, Vec<String>, Vec<String>) = match *self {
            Schedule::Constant => ("constant", vec![], vec![]),
            Schedule::Step { every, gamma } => ("step", vec![every.to_string(), gamma.to_string()], vec![]),
            Schedule::Exponential { gamma } => ("exp", vec![gamma.to_string()], vec![]),
            Schedule::Cosine { warmup, min_lr } => {
                ("cosine", vec![warmup.to_string(), min_lr.to_string()], vec!["0".into(), "0".into()])
            }
            Schedule::Plateau { patience, factor, min_lr, on_val } => (
                if on_val { "plateau:val" } else { "plateau" },
                vec![patience.to_string(), factor.to_string(), min_lr.to_string()],
                vec!["2".into(), "0.1".into(), 0.000001f32.to_string()],
            ),
        };
        let mut keep = args.len();
        while keep > 0 && defaults.get(keep - 1) == Some(&args[keep - 1]) {
            keep -= 1;
        }
        write!(f, "{name}")?;
        args[..keep].iter().try_for_each(|a| write!(f, ":{a}"))
    }
}

impl Schedule {
    /// Whether the schedule decides on the validation loss (`plateau:val`).
    pub fn watches_val(&self) -> bool {
        matches!(self, Schedule::Plateau { on_val: true, .. })
    }
}

impl From<Schedule> for String {
    fn from(s: Schedule) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Schedule {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        Schedule::parse(&s)
    }
}
