//! Data-parallel training: each global batch split into fixed shares, each share's
//! gradient computed on its own, the shares' gradients added in share order.
//!
//! With `N` shares, a batch of `B` rows gives share `r` its rows `⌊rB/N⌋ … ⌊(r+1)B/N⌋ − 1`
//! ([`share`]: sizes differ by at most one; an epoch's tail batch of fewer than `N` rows
//! leaves some shares empty, and an empty share adds zeros). Share `r` computes
//!
//! ```text
//!     g_r = (1/B) · Σ_{n ∈ share r} ∇ loss_n        (its sum, scaled by the global batch)
//! ```
//!
//! and the step's gradient is the explicitly ordered sum `g = ((g₀ + g₁) + g₂) + …`, added
//! element by element in f32 ([`ordered_sum`]): the batch's mean gradient up to rounding.
//! A full-batch step (`--batch full`) does the same over its chunks: each share adds its
//! part of every chunk into its own sum first. Every process adds the same numbers in the
//! same order, so `g` is the same bits everywhere, and every process applies the same
//! optimizer step to the same weights.
//!
//! [`Sharded`] is that step around any [`Engine`]. In one process (`--shards N`) it holds
//! all `N` shares and computes them one after another; under MPI ([`mpi`], `train
//! --distributed`) each rank holds the share of its rank and a [`Collective`] brings the
//! others' — and both add in the same order, so one process with `--shards N` gives the
//! bits `N` ranks give, which is what makes the distributed path testable without a
//! cluster. The training metrics are combined the same way (share by share, in share
//! order, each step), evaluation runs on rank 0 alone and is broadcast, and a step with a
//! non-finite loss on any share is skipped on every rank.

#[cfg(feature = "mpi")]
pub mod mpi;

use crate::data::augment::Draws;
use crate::data::batches::{Batch, Gather};
use crate::data::Dataset;
use crate::engine::{Engine, Tally};
use crate::error::{Error, Result};
use crate::optim::OptimStep;
use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How processes that train together exchange numbers. Every call is collective: every
/// rank makes it, in the same order, with the same lengths.
pub trait Collective {
    /// This process's rank, `0 … size − 1`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// The rank among the ranks on this machine (picks the adapter).
    fn local_rank(&self) -> usize;
    /// Ends every rank of the job at once (after an error only this rank saw).
    fn abort(&self, code: i32) -> !;
    /// Writes into `sum` the element-wise sum of every rank's `local`, added in rank
    /// order, `((x₀ + x₁) + x₂) + …` — the same bits on every rank.
    fn ordered_sum(&self, local: &[f32], sum: &mut [f32]) -> Result<()>;
    /// Every rank's `local`, concatenated in rank order.
    fn all_gather(&self, local: &[f64]) -> Result<Vec<f64>>;
    /// Rank 0's `v`, written into `v` on every rank.
    fn broadcast(&self, v: &mut [f64]) -> Result<()>;
}

/// The rows of a batch of `rows` that share `r` of `shares` takes.
pub fn share(rows: usize, shares: usize, r: usize) -> Range<usize> {
    r * rows / shares..(r + 1) * rows / shares
}

/// `sum = ((p₀ + p₁) + p₂) + …`, element by element (all of one length; no parts: zeros).
pub fn ordered_sum(parts: &[&[f32]], sum: &mut [f32]) -> Result<()> {
    if let Some(p) = parts.iter().find(|p| p.len() != sum.len()) {
        return Err(Error::shape("parallel::ordered_sum", format!("parts of {}", sum.len()), p.len()));
    }
    match parts.split_first() {
        Some((first, rest)) => {
            sum.copy_from_slice(first);
            for p in rest {
                sum.iter_mut().zip(p.iter()).for_each(|(s, x)| *s += x);
            }
        }
        None => sum.fill(0.0),
    }
    Ok(())
}

/// The time data-parallel steps spent on combining their shares.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub steps: u64,
    /// In the metrics' exchange, which comes first: mostly waiting for the slowest rank.
    pub waiting: Duration,
    /// In the gradient's ordered sum (exchange and additions).
    pub reducing: Duration,
}

impl Cost {
    /// `waiting 1.234 ms + reducing 0.567 ms per step`.
    pub fn per_step(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / self.steps.max(1) as f64;
        format!("waiting {:.3} ms + reducing {:.3} ms per step", ms(self.waiting), ms(self.reducing))
    }
}

/// Numbers per share in the metrics exchanged each step: loss sum, correct, samples, bad
/// steps, and whether its process was asked to stop (Ctrl-C).
const TALLY_LEN: usize = 5;

/// A data-parallel [`Engine`]: each batch split into shares, the shares this process
/// holds computed by the engine inside, their gradients and metrics combined with the
/// other processes' in share order (see the module's docs).
pub struct Sharded<'a> {
    inner: Box<dyn Engine + 'a>,
    shares: usize,
    /// Values in the gradient (the inner engine's parameters).
    len: usize,
    comm: Option<&'a dyn Collective>,
    /// The gradient sum of each share this process holds, for the step being accumulated.
    grads: Vec<Vec<f32>>,
    /// One share's gradient of one chunk, read back before it is added (full batch).
    chunk: Vec<f32>,
    /// The step's gradient: all shares' sums, added in share order.
    sum: Vec<f32>,
    /// The metrics of each share this process holds, for this step.
    step_tallies: Vec<Tally>,
    tally: Tally,
    /// Ctrl-C as this process saw it, and as all processes agreed at the last step.
    stop: Option<(&'a AtomicBool, &'a AtomicBool)>,
    cost: Rc<Cell<Cost>>,
}

impl<'a> Sharded<'a> {
    /// `shares` shares in one process, or (with `comm`) the share of `comm`'s rank among
    /// `comm.size()`.
    pub fn new(inner: Box<dyn Engine + 'a>, shares: usize, comm: Option<&'a dyn Collective>) -> Result<Self> {
        let shares = comm.map_or(shares, |c| c.size());
        if shares == 0 {
            return Err(Error::invalid("--shards", 0, "at least 1"));
        }
        let local = if comm.is_some() { 1 } else { shares };
        let len = inner.param_count();
        let (grads, step_tallies) = (vec![vec![0.0; len]; local], vec![Tally::default(); local]);
        let (tally, stop, cost) = (Tally::default(), None, Rc::default());
        let (sum, chunk) = (vec![0.0; len], vec![0.0; len]);
        Ok(Sharded { inner, shares, len, comm, grads, chunk, sum, step_tallies, tally, stop, cost })
    }

    /// What combining the shares has cost so far, read at any time — also after the
    /// engine has been boxed.
    pub fn cost(&self) -> Rc<Cell<Cost>> {
        Rc::clone(&self.cost)
    }

    /// Makes a stop request seen by any process (`local`, set by its Ctrl-C handler)
    /// reach every process at the same step: after each step `agreed` is set on all of
    /// them when any had `local` set. Give the trainer `agreed` as its interrupt.
    pub fn agree_on_stop(&mut self, local: &'a AtomicBool, agreed: &'a AtomicBool) {
        self.stop = Some((local, agreed));
    }

    /// The shares this process computes.
    fn local(&self) -> Range<usize> {
        match self.comm {
            Some(c) => c.rank()..c.rank() + 1,
            None => 0..self.shares,
        }
    }
}

fn tally_numbers(t: &Tally, stop: bool) -> [f64; TALLY_LEN] {
    [t.loss_sum, t.correct as f64, t.samples as f64, t.bad_steps as f64, f64::from(u8::from(stop))]
}

impl Engine for Sharded<'_> {
    fn describe(&self) -> String {
        match self.comm {
            Some(c) => format!("{} ranks over MPI, rank {} on {}", c.size(), c.rank(), self.inner.describe()),
            None => format!("{} in {} shares", self.inner.describe(), self.shares),
        }
    }

    fn gather(&self) -> Gather {
        self.inner.gather()
    }

    fn begin_epoch(&mut self, d: Draws) -> Result<()> {
        self.inner.begin_epoch(d)
    }

    fn train_step(&mut self, b: &Batch, opt: &OptimStep) -> Result<()> {
        self.accumulate(b, 1.0 / b.idx.len() as f32, true)?;
        self.update(opt)
    }

    /// Each share this process holds: its rows' gradient into its own sum (the inner
    /// engine computes it afresh and hands it back), its metrics into its own tally.
    fn accumulate(&mut self, b: &Batch, scale: f32, first: bool) -> Result<()> {
        let rows = b.idx.len();
        for (k, r) in self.local().enumerate() {
            let range = share(rows, self.shares, r);
            if first {
                self.step_tallies[k] = Tally::default();
            }
            let into = if first { &mut self.grads[k] } else { &mut self.chunk };
            if range.is_empty() {
                into.fill(0.0);
            } else {
                self.inner.accumulate(&b.rows(range), scale, true)?;
                self.step_tallies[k].add(self.inner.take_tally()?);
                self.inner.gradient_into(into)?;
            }
            if !first {
                self.grads[k].iter_mut().zip(&self.chunk).for_each(|(s, x)| *s += x);
            }
        }
        Ok(())
    }

    /// Combines the step's metrics and gradients over all shares in share order; applies
    /// the update unless a share's loss was not finite.
    fn update(&mut self, opt: &OptimStep) -> Result<()> {
        let t0 = Instant::now();
        let stop_seen = self.stop.is_some_and(|(local, _)| local.load(Ordering::SeqCst));
        let mine: Vec<f64> = self.step_tallies.iter().flat_map(|t| tally_numbers(t, stop_seen)).collect();
        let all = match self.comm {
            Some(c) => c.all_gather(&mine)?,
            None => mine,
        };
        let t1 = Instant::now();
        let mut bad = false;
        let mut stop = false;
        for t in all.chunks_exact(TALLY_LEN) {
            self.tally.loss_sum += t[0];
            self.tally.correct += t[1] as u64;
            self.tally.samples += t[2] as u64;
            bad |= t[3] > 0.0;
            stop |= t[4] > 0.0;
        }
        if let (true, Some((_, agreed))) = (stop, self.stop) {
            agreed.store(true, Ordering::SeqCst);
        }
        match self.comm {
            Some(c) => c.ordered_sum(&self.grads[0], &mut self.sum)?,
            None => ordered_sum(&self.grads.iter().map(Vec::as_slice).collect::<Vec<_>>(), &mut self.sum)?,
        }
        let c = self.cost.get();
        let (waiting, reducing) = (c.waiting + (t1 - t0), c.reducing + t1.elapsed());
        self.cost.set(Cost { steps: c.steps + 1, waiting, reducing });
        if bad {
            self.tally.bad_steps += 1;
            return Ok(());
        }
        self.inner.set_gradient(&self.sum)?;
        self.inner.update(opt)
    }

    fn param_count(&self) -> usize {
        self.len
    }

    /// The shares' gradients are combined inside [`update`](Engine::update): there is no
    /// one accumulated gradient to hand out or replace in between.
    fn gradient_into(&mut self, _: &mut [f32]) -> Result<()> {
        Err(Error::precondition("Sharded::gradient_into", "one engine per share (shares combine in update)"))
    }

    fn set_gradient(&mut self, _: &[f32]) -> Result<()> {
        Err(Error::precondition("Sharded::set_gradient", "one engine per share (shares combine in update)"))
    }

    fn take_tally(&mut self) -> Result<Tally> {
        Ok(std::mem::take(&mut self.tally))
    }

    /// Rank 0 evaluates and every rank receives its figures, so schedules and early
    /// stopping decide the same everywhere.
    fn evaluate(&mut self, data: &Dataset) -> Result<Tally> {
        let Some(c) = self.comm else { return self.inner.evaluate(data) };
        let mut v = match c.rank() {
            0 => tally_numbers(&self.inner.evaluate(data)?, false),
            _ => [0.0; TALLY_LEN],
        };
        c.broadcast(&mut v)?;
        Ok(Tally { loss_sum: v[0], correct: v[1] as u64, samples: v[2] as u64, bad_steps: v[3] as u64 })
    }

    fn predict(&mut self, data: &Dataset) -> Result<Vec<f32>> {
        self.inner.predict(data)
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.inner.params()
    }

    fn optim_state(&mut self) -> Result<Vec<Vec<f32>>> {
        self.inner.optim_state()
    }

    fn set_state(&mut self, params: &[f32], state: &[Vec<f32>]) -> Result<()> {
        self.inner.set_state(params, state)
    }
}

/// An error, and whether this process reports it: among ranks, an error every rank meets
/// alike is reported by one.
pub struct Failure {
    pub error: Error,
    pub print: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, print: true }
    }
}

/// Among ranks (`comm`; without it, `r` as it is): `r`'s value if every rank's `r`
/// succeeded, else a failure on every rank — printed by the lowest rank that failed, so
/// bad input that every rank reads alike gives the one line one process gives, once.
pub fn agree<T>(comm: Option<&dyn Collective>, r: Result<T>) -> std::result::Result<T, Failure> {
    let Some(c) = comm else { return r.map_err(Failure::from) };
    let flags = c.all_gather(&[f64::from(u8::from(r.is_err()))])?;
    let first = flags.iter().position(|&f| f > 0.0);
    let all_failed = flags.iter().all(|&f| f > 0.0);
    match (r, first) {
        (Ok(v), None) => Ok(v),
        // Where only some ranks failed, the line says which (a file missing on one node).
        (Err(e), f) if !all_failed => {
            Err(Failure { print: f == Some(c.rank()), error: Error::Ranks(format!("rank {}: {e}", c.rank())) })
        }
        (Err(error), f) => Err(Failure { print: f == Some(c.rank()), error }),
        (Ok(_), Some(rank)) => Err(Failure { error: Error::Ranks(format!("rank {rank} failed")), print: false }),
    }
}

/// Whether every rank's `fingerprint` is the same (collective), and rank 0's.
pub fn same_everywhere(c: &dyn Collective, fingerprint: u64) -> Result<(bool, u64)> {
    let all = c.all_gather(&[(fingerprint >> 32) as f64, (fingerprint & 0xffff_ffff) as f64])?;
    let first = ((all[0] as u64) << 32) | all[1] as u64;
    Ok((all.chunks_exact(2).all(|p| *p == all[..2]), first))
}

/// Checks that every rank holds the same `params`, bit for bit (`when` names the moment in
/// the error); returns their [`fingerprint`].
pub fn same_weights(c: &dyn Collective, params: &[f32], when: &str) -> Result<u64> {
    let f = fingerprint(params);
    match same_everywhere(c, f)? {
        (true, _) => Ok(f),
        (false, _) => Err(Error::Ranks(format!("the ranks' weights differ {when}"))),
    }
}

/// A fingerprint of a parameter vector's bits (FNV-1a), to check that ranks agree.
pub fn fingerprint(params: &[f32]) -> u64 {
    crate::rng::fnv1a(params.iter().flat_map(|p| p.to_bits().to_le_bytes()))
}
