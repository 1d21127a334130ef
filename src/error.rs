//! One error type for the library: each variant carries what a user needs to act.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A data or checkpoint file whose content is not what was expected.
    #[error("{path}: {what}")]
    Format { path: PathBuf, what: String },
    /// A flag or configuration value out of range.
    #[error("{flag}: {value} is invalid: expected {expected}")]
    Invalid { flag: String, value: String, expected: String },
    /// Shapes that do not fit together: `op` needs `expected` and was given `got`.
    #[error("{op}: expected {expected}, got {got}")]
    Shape { op: String, expected: String, got: String },
    /// An operation called in a state that does not allow it (a caller's mistake, not the
    /// user's): `op` requires `requirement`.
    #[error("{op} requires {requirement}")]
    Precondition { op: &'static str, requirement: String },
    /// No adapter, or none matching the user's choice.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The model or batch needs more than the adapter allows.
    #[error("the adapter's limit {limit} is {allowed}, but {needed} is needed: {hint}")]
    LimitExceeded { limit: &'static str, needed: u64, allowed: u64, hint: String },
    /// wgpu reported an error (device request, validation, mapping).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Training produced a NaN or infinity by `step`; `kept` says where the last good
    /// weights are.
    #[error(
        "the loss became NaN or infinite by step {step} (learning rate {lr:e}); that step's update was skipped \
         and the run stopped; {kept}. Try a lower learning rate."
    )]
    NonFinite { step: u64, lr: f32, kept: String },
    /// The model would need more host memory than the machine has available.
    #[error(
        "{what} needs about {} of memory, but {} is available (MemAvailable in /proc/meminfo): {hint}",
        gib(*.needed),
        gib(*.available)
    )]
    OutOfMemory { what: String, needed: u64, available: u64, hint: String },
    /// The ranks of a data-parallel run disagree (another rank failed, or their weights
    /// differ).
    #[error("data-parallel training: {0}")]
    Ranks(String),
}

/// `12.3 GiB`.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn format(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Format { path: path.into(), what: what.into() }
    }

    pub fn shape(op: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::Shape { op: op.into(), expected: expected.to_string(), got: got.to_string() }
    }

    pub fn precondition(op: &'static str, requirement: impl Into<String>) -> Self {
        Error::Precondition { op, requirement: requirement.into() }
    }

    pub fn invalid(flag: &str, value: impl ToString, expected: impl Into<String>) -> Self {
        Error::Invalid { flag: flag.into(), value: value.to_string(), expected: expected.into() }
    }
}
