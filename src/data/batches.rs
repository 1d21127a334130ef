//! The order of samples in each epoch, its batches, and the producer thread that gathers
//! them while the engine computes.
//!
//! Epoch `e`'s order is a Fisher–Yates shuffle driven by ChaCha8 seeded with the run's
//! seed on stream `1000 + e`: a pure function of (seed, epoch, N), the same on every
//! machine, so a resumed run regenerates it exactly.

use super::{Dataset, FeatureData};
use crate::error::Result;
use crate::rng::Rng;
use std::ops::ControlFlow;

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

/// What the producer thread prepares for each batch (the engine says which it needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gather {
    /// Only the indices (the data set is resident on the device).
    Indices,
    /// The rows as stored (bytes stay bytes), for streaming to the device.
    Raw,
    /// The rows as f32 in [0, 1] (the CPU computes on them directly).
    F32,
}

/// One batch: its sample indices, and its rows and labels if gathered.
pub struct Batch {
    pub idx: Vec<u32>,
    pub rows: Option<FeatureData>,
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Batch {
    /// Prepares rows `idx` of `data` as `how` asks.
    pub fn gather(data: &Dataset, idx: Vec<u32>, how: Gather) -> Batch {
        let w = data.width;
        let labels = idx.iter().map(|&i| data.labels[i as usize]).collect();
        let (rows, x) = match how {
            Gather::Indices => (None, Vec::new()),
            Gather::Raw => (Some(data.select(&idx).features), Vec::new()),
            Gather::F32 => {
                let mut x = vec![0.0f32; idx.len() * w];
                for (n, &i) in idx.iter().enumerate() {
                    data.row_f32(i as usize, &mut x[n * w..(n + 1) * w]);
                }
                (None, x)
            }
        };
        Batch { idx, rows, x, labels }
    }

    /// Rows `r` of the batch (a data-parallel share of it), with whatever was gathered.
    pub fn rows(&self, r: std::ops::Range<usize>) -> Batch {
        let n = self.idx.len().max(1);
        let part = |len: usize| (r.start * len / n)..(r.end * len / n);
        let rows = self.rows.as_ref().map(|f| match f {
            FeatureData::U8(v) => FeatureData::U8(v[part(v.len())].to_vec()),
            FeatureData::F32(v) => FeatureData::F32(v[part(v.len())].to_vec()),
        });
        let x = self.x[part(self.x.len())].to_vec();
        Batch { idx: self.idx[r.clone()].to_vec(), rows, x, labels: self.labels[r].to_vec() }
    }
}

/// Runs `f` on each batch in order while a producer thread gathers the next ones as
/// `how` says (a bounded queue of 4, so gathering overlaps computing). `f` stops the
/// stream early by returning `ControlFlow::Break`; an error stops it too.
pub fn stream(
    data: &Dataset,
    batches: &[&[u32]],
    how: Gather,
    mut f: impl FnMut(usize, &Batch) -> Result<ControlFlow<()>>,
) -> Result<()> {
    stream_owned(data, batches, how, |i, b| f(i, &b))
}

/// As [`stream`], handing each batch over (to keep a run of them).
pub fn stream_owned(
    data: &Dataset,
    batches: &[&[u32]],
    how: Gather,
    mut f: impl FnMut(usize, Batch) -> Result<ControlFlow<()>>,
) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
        s.spawn(move || {
            for idx in batches {
                if tx.send(Batch::gather(data, idx.to_vec(), how)).is_err() {
                    return; // the consumer stopped: stop gathering
                }
            }
        });
        for (i, b) in rx.iter().enumerate() {
            if f(i, b)?.is_break() {
                break;
            }
        }
        Ok(())
    })
}
