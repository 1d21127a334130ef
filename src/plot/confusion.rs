//! The confusion matrix of a classifier on a labelled set: counted from the softmax
//! probabilities, drawn as a heat map with per-class accuracy beside it, and printed as a
//! text table.

use super::{color, font, ink, save, text_width, DrawResult, Figure};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// The predicted class of one row of probabilities: the index of the largest value, ties
/// to the lowest index (as the training kernels count correct answers); NaN never wins.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] || row[best].is_nan() {
            best = c;
        }
    }
    best
}

/// Checks that `probs` holds `classes` values per label and that every label is a class.
pub(crate) fn check_shapes(labels: &[u32], probs: &[f32], classes: usize) -> Result<()> {
    if classes == 0 || probs.len() != labels.len() * classes {
        let got = format!("{} probabilities for {} samples of {classes} classes", probs.len(), labels.len());
        return Err(Error::shape("confusion", labels.len() * classes, got));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(Error::shape("confusion", format!("labels below {classes}"), format!("sample {i} has label {l}")));
    }
    Ok(())
}

/// The confusion matrix `m[true][predicted]`: how many samples of each true class were
/// predicted as each class, the prediction being [`argmax`] of the sample's row of
/// `probs` (`[N, classes]`, row-major, e.g. from `Engine::predict`).
pub fn confusion(labels: &[u32], probs: &[f32], classes: usize) -> Result<Vec<Vec<u64>>> {
    check_shapes(labels, probs, classes)?;
    let mut m = vec![vec![0u64; classes]; classes];
    for (&l, row) in labels.iter().zip(probs.chunks_exact(classes)) {
        m[l as usize][argmax(row)] += 1;
    }
    Ok(m)
}

/// Each class's accuracy (its recall): the diagonal count over the row's total; NaN for a
/// class without samples.
pub fn per_class_accuracy(m: &[Vec<u64>]) -> Vec<f64> {
    m.iter().enumerate().map(|(i, row)| row[i] as f64 / row.iter().sum::<u64>() as f64).collect()
}

/// The overall accuracy: the diagonal's sum over all samples.
pub fn overall_accuracy(m: &[Vec<u64>]) -> f64 {
    let total: u64 = m.iter().flatten().sum();
    let right: u64 = m.iter().enumerate().map(|(i, r)| r[i]).sum();
    right as f64 / total as f64
}

/// The name of class `i` (its index when `names` has none).
fn name(names: &[String], i: usize) -> String {
    names.get(i).cloned().unwrap_or_else(|| format!("class {i}"))
}

/// The confusion matrix as a text table for the terminal: one row per true class (index
/// and name), one column per predicted class (by index), the class's accuracy at the end
/// of each row, and the overall accuracy below.
pub fn confusion_table(m: &[Vec<u64>], class_names: &[String]) -> String {
    let k = m.len();
    let most = m.iter().flatten().copied().max().unwrap_or(0);
    let w = most.to_string().len().max((k.saturating_sub(1)).to_string().len()).max(3) + 2;
    let labels: Vec<String> = (0..k).map(|i| format!("{i:>2} {}", name(class_names, i))).collect();
    let lw = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0).max("true \\ predicted".len());
    let mut out = format!("{:<lw$}", "true \\ predicted");
    for j in 0..k {
        out += &format!("{j:>w$}");
    }
    out += "  accuracy\n";
    let acc = per_class_accuracy(m);
    for (i, row) in m.iter().enumerate() {
        out += &format!("{:<lw$}", labels[i]);
        for c in row {
            out += &format!("{c:>w$}");
        }
        out += &format!("  {:>8.4}\n", acc[i]);
    }
    let total: u64 = m.iter().flatten().sum();
    let right: u64 = m.iter().enumerate().map(|(i, r)| r[i]).sum();
    out += &format!("overall accuracy {:.4} ({right} of {total} correct)\n", overall_accuracy(m));
    out
}

/// Draws the confusion matrix `m` (rows: true class, columns: predicted class) as a heat
/// map into `<stem>.svg` and `<stem>.png`: each cell shows its count, shaded by the share
/// of its row (square-root scale, so that small confusions show); class names label both
/// axes, and a bar per row to the right shows that class's accuracy.
pub fn plot_confusion(m: &[Vec<u64>], class_names: &[String], stem: &Path) -> Result<Vec<PathBuf>> {
    if m.is_empty() || m.iter().any(|r| r.len() != m.len()) {
        return Err(Error::shape("plot_confusion", "a square, non-empty matrix", format!("{} rows", m.len())));
    }
    let names = (0..m.len()).map(|i| name(class_names, i)).collect();
    save(&ConfusionFigure::new(m.to_vec(), names), stem)
}

struct ConfusionFigure {
    m: Vec<Vec<u64>>,
    names: Vec<String>,
    /// Cell side, and the widest class name, in pixels.
    cell: i32,
    name_w: i32,
    /// The class names' font size: 14, smaller when the cells are.
    label_size: f64,
}

const MARGIN: i32 = 16;
const TITLE_H: i32 = 62;
const AXIS_TITLE: i32 = 26;
const BAR_GAP: i32 = 36;
const BAR_W: i32 = 150;
const BAR_TEXT: i32 = 64;

impl ConfusionFigure {
    fn new(m: Vec<Vec<u64>>, names: Vec<String>) -> Self {
        let cell = (560 / m.len() as i32).clamp(10, 60);
        let label_size = (f64::from(cell) * 0.8).min(14.0);
        let name_w = names.iter().map(|n| text_width(n, label_size)).max().unwrap_or(0).max(24);
        ConfusionFigure { m, names, cell, name_w, label_size }
    }

    /// The grid's top-left corner.
    fn origin(&self) -> (i32, i32) {
        (MARGIN + AXIS_TITLE + self.name_w + 10, MARGIN + TITLE_H + 16)
    }
}

/// Light to dark blue as `t` goes from 0 to 1.
fn shade(t: f64) -> RGBColor {
    let (lo, hi) = ((247.0, 251.0, 255.0), (8.0, 48.0, 107.0));
    let mix = |a: f64, b: f64| (a + (b - a) * t.clamp(0.0, 1.0)).round() as u8;
    RGBColor(mix(lo.0, hi.0), mix(lo.1, hi.1), mix(lo.2, hi.2))
}

impl Figure for ConfusionFigure {
    fn size(&self) -> (u32, u32) {
        let (x0, y0) = self.origin();
        let grid = self.cell * self.m.len() as i32;
        let w = x0 + grid + BAR_GAP + BAR_W + BAR_TEXT + MARGIN;
        let h = y0 + grid + 10 + self.name_w + 8 + AXIS_TITLE + MARGIN;
        (w.max(560) as u32, h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let k = self.m.len();
        let (x0, y0) = self.origin();
        let cell = self.cell;
        let grid = cell * k as i32;
        let total: u64 = self.m.iter().flatten().sum();
        let centre = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(
            format!("Confusion matrix: {total} samples, accuracy {:.4}", overall_accuracy(&self.m)),
            (MARGIN, MARGIN),
            font(20.0),
        ))?;
        root.draw(&Text::new(
            "rows: true class, columns: predicted class; shade: share of the row (square-root scale)",
            (MARGIN, MARGIN + 30),
            ink(13.0, RGBColor(80, 80, 80)),
        ))?;
        let count_font = (cell as f64 * 0.3).min(14.0);
        for (i, row) in self.m.iter().enumerate() {
            let n: u64 = row.iter().sum();
            for (j, &c) in row.iter().enumerate() {
                let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                let t = if n == 0 { 0.0 } else { (c as f64 / n as f64).sqrt() };
                root.draw(&Rectangle::new([(x, y), (x + cell, y + cell)], shade(t).filled()))?;
                if cell >= 26 && c > 0 {
                    let text = if t > 0.55 { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        c.to_string(),
                        (x + cell / 2, y + cell / 2),
                        ink(count_font, text).pos(centre),
                    ))?;
                }
            }
        }
        root.draw(&Rectangle::new([(x0, y0), (x0 + grid, y0 + grid)], RGBColor(120, 120, 120).stroke_width(1)))?;
        // Class names: left of the rows, and below the columns reading upwards.
        let right_mid = Pos::new(HPos::Right, VPos::Center);
        for (i, n) in self.names.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            let style = font(self.label_size).pos(right_mid);
            root.draw(&Text::new(n.as_str(), (x0 - 8, y0 + mid), style.clone()))?;
            root.draw(&Text::new(n.as_str(), (x0 + mid, y0 + grid + 8), style.transform(FontTransform::Rotate270)))?;
        }
        root.draw(&Text::new(
            "true class",
            (MARGIN, y0 + grid / 2),
            font(16.0).pos(Pos::new(HPos::Center, VPos::Top)).transform(FontTransform::Rotate270),
        ))?;
        root.draw(&Text::new(
            "predicted class",
            (x0 + grid / 2, y0 + grid + 10 + self.name_w + 8),
            font(16.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
        // Per-class accuracy: a bar per row on a 0–1 scale.
        let bx = x0 + grid + BAR_GAP;
        root.draw(&Text::new("accuracy per class", (bx, y0 - 6), font(14.0).pos(Pos::new(HPos::Left, VPos::Bottom))))?;
        let bar = color(0);
        for (i, acc) in super::per_class_accuracy(&self.m).into_iter().enumerate() {
            let y = y0 + i as i32 * cell;
            let pad = (cell / 5).max(2);
            root.draw(&Rectangle::new(
                [(bx, y + pad), (bx + BAR_W, y + cell - pad)],
                RGBColor(235, 235, 235).filled(),
            ))?;
            let text = if acc.is_finite() {
                let len = (acc * BAR_W as f64).round() as i32;
                root.draw(&Rectangle::new([(bx, y + pad), (bx + len, y + cell - pad)], bar.filled()))?;
                format!("{acc:.3}")
            } else {
                "none".to_string()
            };
            root.draw(&Text::new(
                text,
                (bx + BAR_W + 6, y + cell / 2),
                font(self.label_size.min(13.0)).pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }
        Ok(())
    }
}
