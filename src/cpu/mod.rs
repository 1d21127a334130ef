//! The CPU side: the reference twin of every kernel ([`ops`]), the same fully connected
//! ops through a GEMM crate ([`fast`]), and a whole network's forward and backward pass
//! built from either ([`net`]).

/// The convolution and max-pooling twins, and their shape checks.
pub mod conv;
/// The dropout twin (counter-based masks, `rng::dropout_keep`).
pub mod dropout;
pub mod fast;
/// The convolution through im2col and a GEMM crate.
pub mod fast_conv;
pub mod net;
pub mod ops;
