//! The CPU side: the reference twin of every kernel ([`ops`]), the same fully connected
//! ops through a GEMM crate ([`fast`]), and a whole network's forward and backward pass
//! built from either ([`net`]).

pub mod conv;
pub mod dropout;
pub mod fast;
pub mod fast_conv;
pub mod net;
pub mod ops;
