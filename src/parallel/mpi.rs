//! The [`Collective`] over MPI (`cargo build --features mpi`; run under `mpirun`).
//!
//! The ordered sum is a reduce-scatter and an all-gather, both by plain data movement:
//! the gradient of `G` values is cut into `N` segments of `⌈G/N⌉`; `MPI_Alltoall` sends
//! rank `q` segment `q` of every rank's vector, rank `q` adds the `N` copies of its
//! segment in rank order, and `MPI_Allgather` hands every rank every summed segment.
//! Each element is still `((x₀ + x₁) + x₂) + …` — the order no MPI reduction algorithm
//! promises — while each rank sends and receives `2 (N−1)/N · G` values, what a ring
//! all-reduce moves.

use super::Collective;
use crate::error::{Error, Result};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use std::cell::RefCell;

/// MPI's world: this process's rank among all of `mpirun`'s.
pub struct Mpi {
    /// Dropped last: finalizes MPI.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
    /// The rank among the ranks on this machine (picks the adapter).
    local_rank: usize,
    /// The ordered sum's buffers, kept from step to step (a fresh megabyte per step costs
    /// its page faults every time): what this rank sends, and what it receives.
    buffers: RefCell<(Vec<f32>, Vec<f32>)>,
}

impl Mpi {
    /// Initializes MPI (once per process).
    pub fn init() -> Result<Mpi> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::precondition("--distributed", "MPI not initialized before (one run per process)"))?;
        let world = universe.world();
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(Mpi { _universe: universe, world, local_rank, buffers: RefCell::default() })
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    fn ordered_sum(&self, local: &[f32], sum: &mut [f32]) -> Result<()> {
        if local.len() != sum.len() {
            return Err(Error::shape("Mpi::ordered_sum", format!("{} values", sum.len()), local.len()));
        }
        let n = self.size();
        let seg = local.len().div_ceil(n).max(1);
        let (send, got) = &mut *self.buffers.borrow_mut();
        send.clear();
        send.extend_from_slice(local);
        send.resize(seg * n, 0.0);
        got.resize(seg * n, 0.0);
        self.world.all_to_all_into(&send[..], &mut got[..]);
        // got[q·seg …] is rank q's copy of this rank's segment: add them in rank order.
        let (mine, rest) = got.split_at_mut(seg);
        for part in rest.chunks_exact(seg) {
            mine.iter_mut().zip(part).for_each(|(s, x)| *s += x);
        }
        self.world.all_gather_into(&mine[..], &mut send[..]);
        sum.copy_from_slice(&send[..local.len()]);
        Ok(())
    }

    fn all_gather(&self, local: &[f64]) -> Result<Vec<f64>> {
        let mut all = vec![0.0f64; local.len() * self.size()];
        self.world.all_gather_into(local, &mut all[..]);
        Ok(all)
    }

    fn broadcast(&self, v: &mut [f64]) -> Result<()> {
        self.world.process_at_rank(0).broadcast_into(v);
        Ok(())
    }
}
