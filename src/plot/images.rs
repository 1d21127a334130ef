//! The test images a model gets most confidently wrong, drawn as a grid of grayscale
//! pictures with their true and predicted classes.

use super::confusion::{argmax, check_shapes};
use super::{font, ink, save, DrawResult, Figure};
use crate::data::{Dataset, FeatureData};
use crate::error::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// How many images the mistakes figure shows (a 4 × 4 grid).
pub const GRID_IMAGES: usize = 16;

/// A misclassified sample: its index, true and predicted class, and the probability the
/// model gave the predicted class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mistake {
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    pub p: f32,
}

/// The `k` misclassified samples with the highest predicted-class probability, most
/// confident first (ties: lower index first). `probs` is `[N, classes]` row-major.
pub fn confident_mistakes(labels: &[u32], probs: &[f32], classes: usize, k: usize) -> Result<Vec<Mistake>> {
    check_shapes(labels, probs, classes)?;
    let mut wrong: Vec<Mistake> = labels
        .iter()
        .zip(probs.chunks_exact(classes))
        .enumerate()
        .filter_map(|(index, (&l, row))| {
            let predicted = argmax(row);
            (predicted != l as usize).then_some(Mistake { index, label: l as usize, predicted, p: row[predicted] })
        })
        .collect();
    wrong.sort_by(|a, b| b.p.total_cmp(&a.p).then(a.index.cmp(&b.index)));
    wrong.truncate(k);
    Ok(wrong)
}

/// The side of a square image of `width` pixels (at least 2 × 2), if it is one.
pub fn square_side(width: usize) -> Option<usize> {
    let s = (width as f64).sqrt().round() as usize;
    (s >= 2 && s * s == width).then_some(s)
}

/// Draws the `k` most confident mistakes on `test` (see [`confident_mistakes`]) as a grid
/// of grayscale images (dark ink on white; bytes as they are, `f32` features scaled by the
/// sample's range), each captioned with its true class and the predicted class with its
/// probability, into `<stem>.svg` and `<stem>.png`. Returns no files when the samples are
/// not square images (their width is not a square) or nothing was misclassified.
pub fn plot_mistakes(
    test: &Dataset,
    probs: &[f32],
    class_names: &[String],
    k: usize,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    let Some(side) = square_side(test.width) else {
        return Ok(Vec::new());
    };
    let mistakes = confident_mistakes(&test.labels, probs, class_names.len(), k)?;
    if mistakes.is_empty() {
        return Ok(Vec::new());
    }
    let wrong = test.labels.iter().zip(probs.chunks_exact(class_names.len())).filter(|(&l, r)| argmax(r) != l as usize);
    let wrong = wrong.count();
    let images = mistakes.iter().map(|m| ink_levels(test, m.index)).collect();
    let fig = MistakesFigure { side, images, mistakes, names: class_names.to_vec(), wrong, total: test.rows };
    save(&fig, stem)
}

/// Sample `i`'s pixels as ink levels 0–255 (0: white paper): bytes as they are, `f32`
/// features scaled from the sample's own range.
fn ink_levels(data: &Dataset, i: usize) -> Vec<u8> {
    let row = i * data.width..(i + 1) * data.width;
    match &data.features {
        FeatureData::U8(v) => v[row].to_vec(),
        FeatureData::F32(v) => {
            let v = &v[row];
            let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let span = if hi > lo { hi - lo } else { 1.0 };
            v.iter().map(|&x| ((x - lo) / span * 255.0).round() as u8).collect()
        }
    }
}

/// `p` with enough decimals to tell it from 1 (two at least, six at most): 0.97, 0.9993.
fn probability(p: f32) -> String {
    let d = (-(1.0 - f64::from(p)).log10()).ceil().clamp(2.0, 6.0) as usize;
    format!("{p:.d$}")
}

struct MistakesFigure {
    side: usize,
    images: Vec<Vec<u8>>,
    mistakes: Vec<Mistake>,
    names: Vec<String>,
    wrong: usize,
    total: usize,
}

const COLS: usize = 4;
const CELL_W: i32 = 220;
const CAPTION_H: i32 = 44;
const HEADER_H: i32 = 56;
const PAD: i32 = 12;

impl MistakesFigure {
    /// Screen pixels per image pixel: about 120 pixels a side.
    fn scale(&self) -> i32 {
        (120 / self.side as i32).max(1)
    }

    fn cell_h(&self) -> i32 {
        self.scale() * self.side as i32 + CAPTION_H + PAD
    }
}

impl Figure for MistakesFigure {
    fn size(&self) -> (u32, u32) {
        let rows = self.images.len().div_ceil(COLS) as i32;
        let cols = self.images.len().min(COLS) as i32;
        ((cols * CELL_W + 2 * PAD).max(560) as u32, (HEADER_H + rows * self.cell_h() + PAD) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.draw(&Text::new(
            format!(
                "The {} most confident mistakes ({} of {} test samples misclassified)",
                self.images.len(),
                self.wrong,
                self.total
            ),
            (PAD, PAD),
            font(20.0),
        ))?;
        let s = self.scale();
        let side = self.side as i32;
        let centre_top = Pos::new(HPos::Center, VPos::Top);
        for (n, (img, m)) in self.images.iter().zip(&self.mistakes).enumerate() {
            let cx = PAD + (n % COLS) as i32 * CELL_W + CELL_W / 2;
            let top = HEADER_H + (n / COLS) as i32 * self.cell_h();
            let x0 = cx - s * side / 2;
            // Runs of equal ink along each row become one rectangle (fewer SVG elements).
            for (r, row) in img.chunks_exact(self.side).enumerate() {
                let mut c = 0;
                while c < row.len() {
                    let v = row[c];
                    let run = row[c..].iter().take_while(|&&x| x == v).count();
                    if v > 0 {
                        let g = 255 - v;
                        let (x, y) = (x0 + c as i32 * s, top + r as i32 * s);
                        root.draw(&Rectangle::new([(x, y), (x + run as i32 * s, y + s)], RGBColor(g, g, g).filled()))?;
                    }
                    c += run;
                }
            }
            root.draw(&Rectangle::new(
                [(x0 - 1, top - 1), (x0 + s * side + 1, top + s * side + 1)],
                RGBColor(160, 160, 160).stroke_width(1),
            ))?;
            let name = |c: usize| self.names.get(c).cloned().unwrap_or_else(|| format!("class {c}"));
            let y = top + s * side + 6;
            root.draw(&Text::new(format!("true: {}", name(m.label)), (cx, y), font(14.0).pos(centre_top)))?;
            root.draw(&Text::new(
                format!("pred: {} (p={})", name(m.predicted), probability(m.p)),
                (cx, y + 18),
                ink(14.0, RGBColor(190, 40, 0)).pos(centre_top),
            ))?;
        }
        Ok(())
    }
}
