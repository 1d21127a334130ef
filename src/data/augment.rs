//! Image augmentation while training (`--augment flip,shift:N`): each training sample is
//! flipped left–right with probability ½ and translated by up to `N` pixels each way
//! (zero fill), freshly every epoch. The CPU twin of `shaders/augment.wgsl`.
//!
//! The draws are counter-based, as dropout's masks: three words of
//! `rng::dropout_hash(seed, epoch, sample, ·)` at element indices no layer reaches
//! ([`FLIP`], [`SHIFT_Y`], [`SHIFT_X`]), so the CPU and the GPU draw the same, a sample's
//! draw does not depend on its batch, and a resumed run redraws exactly.
//!
//! For sample `n` of shape `[C, H, W]` with draw `(flip, dy, dx)`:
//! `out[n, c, y, x] = in[n, c, y − dy, x′ − dx]` with `x′ = W − 1 − x` when `flip`, else
//! `x`; 0 where that falls outside the image.

use crate::rng::dropout_hash;
use serde::{Deserialize, Serialize};

/// The element indices of the three draws (above any activation width, which is < 2²⁶).
pub const FLIP: u32 = u32::MAX;
pub const SHIFT_Y: u32 = u32::MAX - 1;
pub const SHIFT_X: u32 = u32::MAX - 2;

/// The largest shift `--augment shift:N` accepts.
pub const MAX_SHIFT: u32 = 64;

/// The random draws of one epoch's training steps: keyed by the run's seed, the epoch and
/// each sample's index in the data set (so they do not depend on the batches), with the
/// images augmented as `augment` says.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Draws {
    pub seed: u64,
    pub epoch: u32,
    pub augment: Augment,
}

/// What `--augment` asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// A random horizontal flip.
    pub flip: bool,
    /// A random translation by up to this many pixels, each axis (0: none).
    pub shift: u32,
}

impl Augment {
    /// `none`, or a comma list of `flip` and `shift:N`.
    pub fn parse(s: &str) -> Result<Augment, String> {
        let mut a = Augment::default();
        if s.trim() == "none" {
            return Ok(a);
        }
        for tok in s.split(',').map(str::trim) {
            match tok.split_once(':') {
                None if tok == "flip" => a.flip = true,
                Some(("shift", n)) => {
                    a.shift = n.parse().ok().filter(|n| (1..=MAX_SHIFT).contains(n)).ok_or_else(|| {
                        format!("`{tok}`: the shift must be a whole number of pixels in 1..={MAX_SHIFT}")
                    })?
                }
                _ => return Err(format!("`{tok}` is not flip or shift:N (expected none, or e.g. flip,shift:2)")),
            }
        }
        Ok(a)
    }

    pub fn is_none(&self) -> bool {
        !self.flip && self.shift == 0
    }

    /// The draw of dataset sample `sample` in `epoch`: `(flip, dy, dx)`, the shifts in
    /// `−shift..=shift` (`hash mod (2·shift + 1)`, minus `shift`).
    pub fn draw(&self, seed: u64, epoch: u32, sample: u32) -> (bool, i32, i32) {
        let flip = self.flip && dropout_hash(seed, epoch, sample, FLIP) & 1 == 1;
        let span = 2 * self.shift + 1;
        let shift = |e| (dropout_hash(seed, epoch, sample, e) % span) as i32 - self.shift as i32;
        (flip, shift(SHIFT_Y), shift(SHIFT_X))
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.flip, self.shift) {
            (false, 0) => write!(f, "none"),
            (true, 0) => write!(f, "flip"),
            (false, s) => write!(f, "shift:{s}"),
            (true, s) => write!(f, "flip,shift:{s}"),
        }
    }
}

/// Augments rows `x: [B, C·H·W]` (sample `n` is dataset sample `samples[n]`) into
/// `out: [B, C·H·W]`; `shape` is `(C, H, W)`.
pub fn augment(
    x: &[f32],
    out: &mut [f32],
    samples: &[u32],
    shape: (usize, usize, usize),
    seed: u64,
    epoch: u32,
    a: &Augment,
) {
    let (c, h, w) = shape;
    let len = c * h * w;
    for (n, &sample) in samples.iter().enumerate() {
        let (flip, dy, dx) = a.draw(seed, epoch, sample);
        let src = &x[n * len..(n + 1) * len];
        let dst = &mut out[n * len..(n + 1) * len];
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let xf = if flip { w - 1 - xx } else { xx };
                    let (ys, xs) = (y as i64 - i64::from(dy), xf as i64 - i64::from(dx));
                    let inside = (0..h as i64).contains(&ys) && (0..w as i64).contains(&xs);
                    dst[(ch * h + y) * w + xx] =
                        if inside { src[(ch * h + ys as usize) * w + xs as usize] } else { 0.0 };
                }
            }
        }
    }
}
