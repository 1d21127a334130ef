//! wgtrain: train neural-network classifiers on any GPU through wgpu compute shaders,
//! with a plain-Rust CPU twin of every kernel that the tests hold the GPU to.
//!
//! The modules, from the ground up (no module imports one above it):
//! - [`error`], [`rng`], [`files`]: the error type, the seeded RNG, atomic file writes.
//! - [`model`], [`optim`], [`data`]: the network and its flat parameter layout,
//!   optimizers and schedules; readers, the data set, the epoch order and batch streamer.
//! - [`cpu::ops`]: the reference twin of every WGSL kernel in `shaders/`;
//!   [`cpu::fast`]: the same ops through a GEMM crate, for CPU training.
//! - [`gpu`]: adapter choice, limits, pipelines, buffers, the recorded training step.
//! - [`checkpoint`]: weights and training state in safetensors.
//! - [`engine`]: the CPU and the GPU behind one training interface.
//! - [`jacobian`]: the lecture's explicit local Jacobians as matrices, and `vᵀJ`.
//! - [`verify`]: CPU-vs-GPU comparison of every op, shared by `wgtrain verify` and the tests.
//! - [`train`]: the training loop; [`run`]: the run folder it records into.
//! - [`bench`], [`plot`], [`progress`]: benchmarks, figures, the terminal display.
//! - [`cli`]: the command line's arguments and their checks (the binary only dispatches).
//! - [`sweep`]: one model at several learning rates; [`lrfind`]: the learning-rate range test
//!   (both take the command line's `train` arguments).

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod cpu;
pub mod data;
pub mod engine;
pub mod error;
pub mod files;
pub mod gpu;
pub mod jacobian;
pub mod lrfind;
pub mod model;
pub mod optim;
pub mod parallel;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod rng;
pub mod run;
pub mod sweep;
pub mod train;
pub mod verify;

pub use error::{Error, Result};

/// The element types the CPU twin runs in: `f32` (as the GPU) and `f64` (gradcheck).
pub trait Real:
    num_traits::Float + Default + Send + Sync + std::fmt::Debug + std::fmt::Display + std::iter::Sum + 'static
{
    /// Converts an `f64` constant.
    fn c(x: f64) -> Self;

    /// `C ← α·A·B + β·C` through `matrixmultiply`, with element strides
    /// (`A: m×k`, `B: k×n`, `C: m×n`).
    ///
    /// # Safety
    /// The strides must keep every access inside the slices.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[Self],
        rsa: isize,
        csa: isize,
        b: &[Self],
        rsb: isize,
        csb: isize,
        beta: Self,
        c: &mut [Self],
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_real {
    ($t:ty, $gemm:path) => {
        impl Real for $t {
            fn c(x: f64) -> Self {
                x as $t
            }

            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                rsa: isize,
                csa: isize,
                b: &[Self],
                rsb: isize,
                csb: isize,
                beta: Self,
                c: &mut [Self],
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), rsc, csc);
            }
        }
    };
}

impl_real!(f32, matrixmultiply::sgemm);
impl_real!(f64, matrixmultiply::dgemm);
