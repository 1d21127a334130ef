//! The validation split: samples held out of the training set, so that everything that
//! *selects* (the best checkpoint, early stopping, a plateau on the held-out loss) never
//! looks at the test set.
//!
//! The split is stratified and seeded: class by class, the class's samples are shuffled
//! (ChaCha8, the run's seed, stream 7) and the first ones held out, as many per class as
//! its share of the set (largest remainders first, ties to the lower class), so the
//! validation set has the training set's class balance, the same on every machine.

use super::{Dataset, Split};
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How much to hold out for validation (`--val`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ValSize {
    /// This many samples (0: none).
    Count(usize),
    /// This fraction of the training set, in (0, 1).
    Fraction(f64),
}

/// The default: a tenth of the training set, at most 5,000 samples (Fashion-MNIST: 5,000
/// of 60,000).
pub const DEFAULT_VAL: usize = 5000;

impl ValSize {
    /// Parses `N` (a whole number ≥ 0) or `FRACTION` (in (0, 1)).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        if let Ok(n) = s.parse::<usize>() {
            return Ok(ValSize::Count(n));
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(ValSize::Fraction(f)),
            _ => Err("expected a number of samples (0 for none) or a fraction in (0, 1)".into()),
        }
    }

    /// The number of samples to hold out of `rows` (`None`: the default).
    pub fn samples(size: Option<ValSize>, rows: usize) -> usize {
        match size {
            None => (rows / 10).min(DEFAULT_VAL),
            Some(ValSize::Count(n)) => n,
            Some(ValSize::Fraction(f)) => (f * rows as f64).round() as usize,
        }
    }
}

impl Split {
    /// Moves `n` samples of the training set, stratified by class and drawn with `seed`,
    /// into the validation set (which must be empty). The training set keeps its order;
    /// the validation set is in training-set order.
    pub fn hold_out(&mut self, n: usize, seed: u64) -> Result<()> {
        let rows = self.train.rows;
        if n == 0 {
            return Ok(());
        }
        if n >= rows {
            return Err(Error::invalid("--val", n, format!("fewer samples than the {rows} of the training set")));
        }
        let held = stratified(&self.train.labels, self.train.classes, n, seed);
        let mut keep = vec![true; rows];
        held.iter().for_each(|&i| keep[i as usize] = false);
        let train_idx: Vec<u32> = (0..rows as u32).filter(|&i| keep[i as usize]).collect();
        let mut val = self.train.select(&held);
        val.source = PathBuf::from(format!("{} (validation split)", self.train.source.display()));
        self.train = self.train.select(&train_idx);
        self.val = val;
        Ok(())
    }
}

/// `n` indices of `labels`, sorted, with each class's share of `n`: class `c` of `count_c`
/// samples gets `⌊n·count_c/N⌋`, and the remaining samples go one each to the classes with
/// the largest remainders.
pub fn stratified(labels: &[u32], classes: usize, n: usize, seed: u64) -> Vec<u32> {
    let total = labels.len();
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i as u32);
    }
    let mut quota: Vec<usize> = by_class.iter().map(|c| n * c.len() / total).collect();
    let mut order: Vec<usize> = (0..classes).collect();
    // Largest remainder first; the stable sort keeps ties in class order.
    order.sort_by_key(|&c| std::cmp::Reverse((n * by_class[c].len()) % total));
    // Fewer than `classes` samples are left, and at least that many have room (n < N).
    let mut left = n - quota.iter().sum::<usize>();
    while left > 0 {
        for &c in &order {
            if left > 0 && quota[c] < by_class[c].len() {
                quota[c] += 1;
                left -= 1;
            }
        }
    }
    let mut held = Vec::with_capacity(n);
    let mut rng = Rng::new(seed, 7);
    for (members, q) in by_class.iter_mut().zip(quota) {
        rng.shuffle(members);
        held.extend_from_slice(&members[..q]);
    }
    held.sort_unstable();
    held
}

impl Dataset {
    /// No rows, the same width and classes (an absent validation set).
    pub fn empty_like(&self) -> Dataset {
        self.head(0)
    }
}
