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

/// MPI's world: this process's rank among all of `mpirun`'s.
pub struct Mpi {
    /// Dropped last: finalizes MPI.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
    /// The rank among the ranks on this machine (picks the adapter).
    local_rank: usize,
}

impl Mpi {
    /// Initializes MPI (once per process).
    pub fn init() -> Result<Mpi> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::precondition("--distributed", "MPI not initialized before (one run per process)"))?;
        let world = universe.world();
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(Mpi { _universe: universe, world, local_rank })
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

    fn ordered_sum(&self, local: &[f32]) -> Result<Vec<f32>> {
        let n = self.size();
        let seg = local.len().div_ceil(n).max(1);
        let mut send = local.to_vec();
        send.resize(seg * n, 0.0);
        let mut got = vec![0.0f32; seg * n];
        self.world.all_to_all_into(&send[..], &mut got[..]);
        let parts: Vec<&[f32]> = got.chunks_exact(seg).collect();
        let mine = super::ordered_sum(&parts);
        let mut all = vec![0.0f32; seg * n];
        self.world.all_gather_into(&mine[..], &mut all[..]);
        all.truncate(local.len());
        Ok(all)
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
