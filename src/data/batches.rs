//! The order of samples in each epoch and its batches.
//!
//! Epoch `e`'s order is a Fisher–Yates shuffle driven by ChaCha8 seeded with the run's
//! seed on stream `1000 + e`: a pure function of (seed, epoch, N), the same on every
//! machine, so a resumed run regenerates it exactly.

use crate::rng::Rng;

/// The permutation of `0..n` for `epoch` under `seed`.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    Rng::new(seed, 1000 + epoch as u64).shuffle(&mut order);
    order
}

/// The number of batches of `batch` in `n` samples, the tail batch kept.
pub fn batch_count(n: usize, batch: usize) -> usize {
    n.div_ceil(batch)
}
