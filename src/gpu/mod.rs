//! Device plumbing, apart from the math: adapter choice and limits ([`context`]),
//! the compiled kernels and their parameter blocks ([`kernels`]), buffer helpers
//! ([`buffers`]), one-shot op runners for parity checks ([`ops`]), which kernel computes
//! each matrix product ([`choice`]: measured per adapter and cached), and the training
//! network whose step is recorded once and replayed ([`net`]).

pub mod buffers;
pub mod choice;
pub mod context;
pub mod conv_im2col;
pub mod conv_kernels;
/// One-shot runners of the convolution, pooling and dropout kernels.
pub mod conv_ops;
pub mod gemm;
pub mod kernels;
pub mod net;
pub mod ops;
pub mod pipeline;

pub use context::{list_adapters, AdapterChoice, Gpu};
