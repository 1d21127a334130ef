//! The one source of randomness: ChaCha8 with a fixed seed, and samplers written out
//! here (not taken from `rand`'s distributions) so the streams are the same on every
//! machine and every version of this crate's dependencies. Every stream is a pure
//! function of (seed, stream number), so a resumed run needs no stored RNG state.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded, portable random stream.
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A stream for `seed`; `stream` separates independent uses of one seed
    /// (initialisation, shuffling, …).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        Rng(r)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (`n > 0`), without modulo bias (rejection sampling).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX - n + 1) % n;
        loop {
            let v = self.next_u64();
            if v <= zone {
                return v % n;
            }
        }
    }

    /// Standard normal, by Box–Muller.
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// Chris Wellons' `lowbias32` integer hash (from his "hash prospector", bias ≈ 0.17): a
/// bijection on `u32` whose output bits each flip with probability close to ½ when any
/// input bit flips. `shaders/hash_common.wgsl` holds the same function.
pub fn lowbias32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// The dropout hash of one element: `lowbias32` chained over the five words
/// (seed low, seed high, epoch, sample, element), `h ← lowbias32(h ⊕ word)` from
/// `h = 0x9e3779b9`. A counter-based draw (no stream), so the CPU and the GPU draw the
/// same bits and a draw does not depend on how a batch is split.
pub fn dropout_hash(seed: u64, epoch: u32, sample: u32, element: u32) -> u32 {
    let mut h = 0x9e37_79b9u32;
    for word in [seed as u32, (seed >> 32) as u32, epoch, sample, element] {
        h = lowbias32(h ^ word);
    }
    h
}

/// The keep threshold for dropout probability `p` in `[0, 1)`: `round(p·2³²)`, clamped
/// to `u32::MAX` (only for `p` within `2⁻³³` of 1). An element is kept iff its hash is
/// `≥` the threshold, so `p = 0` keeps every element and `P(keep) = 1 − p` to within `2⁻³²`.
pub fn dropout_threshold(p: f32) -> u32 {
    assert!((0.0..1.0).contains(&p), "dropout probability {p} is not in [0, 1)");
    (f64::from(p) * 4_294_967_296.0).round().min(f64::from(u32::MAX)) as u32
}

/// The inverted-dropout scale `1/(1 − p)`, computed in `f32` (the GPU receives this value).
pub fn dropout_scale(p: f32) -> f32 {
    1.0 / (1.0 - p)
}

/// The seed the `ordinal`-th dropout layer of a model (0 for the first) draws its masks
/// with: the run's `seed` itself for the first, so that a model with one dropout layer
/// keeps its masks, and the seed mixed with the ordinal for the others, so that two
/// dropout layers of the same width do not drop the same elements.
pub fn dropout_layer_seed(seed: u64, ordinal: u32) -> u64 {
    if ordinal == 0 {
        seed
    } else {
        seed ^ u64::from(ordinal).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Whether dropout keeps `element` of dataset sample `sample` in `epoch`:
/// `dropout_hash(…) ≥ dropout_threshold(p)`.
pub fn dropout_keep(seed: u64, epoch: u32, sample: u32, element: u32, p: f32) -> bool {
    dropout_hash(seed, epoch, sample, element) >= dropout_threshold(p)
}

/// FNV-1a of `bytes`: a fingerprint (not a random draw), to tell inputs apart — the ranks'
/// weights, the matrix-product shaders of a kernel cache.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
