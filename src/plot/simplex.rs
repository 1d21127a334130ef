//! Three-class softmax outputs as points in the probability simplex: a sample's
//! probabilities `p = (p₀, p₁, p₂)` are barycentric coordinates in a triangle whose corners
//! are the three classes, so a confident prediction sits near its class's corner and an
//! undecided one near the centre. The decision regions `P_c = {p : p_c ≥ p_j ∀j}` are the
//! three quadrilaterals that meet at the centroid, bounded by the halves of the medians
//! from the centroid to the edge midpoints.

use super::{color, font, ink, render_rgb, save, text_width, DrawResult, Figure};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

/// The triangle's corners in the plane, one per class: unit sides, class 0 bottom left,
/// class 1 bottom right, class 2 on top.
pub const VERTICES: [(f64, f64); 3] = [(0.0, 0.0), (1.0, 0.0), (0.5, 0.866_025_403_784_438_6)];

/// The point of the plane whose barycentric coordinates are `p` (three probabilities;
/// they are divided by their sum, so rounding off 1 does not move the point off the
/// triangle).
pub fn barycentric(p: &[f32]) -> (f64, f64) {
    let s: f64 = p.iter().take(3).map(|&v| f64::from(v)).sum();
    let s = if s > 0.0 { s } else { 1.0 };
    VERTICES.iter().zip(p).fold((0.0, 0.0), |(x, y), (v, &w)| (x + v.0 * f64::from(w) / s, y + v.1 * f64::from(w) / s))
}

fn midpoint(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0)
}

/// The centroid, `p = (⅓, ⅓, ⅓)`, where the three decision regions meet.
pub fn centroid() -> (f64, f64) {
    barycentric(&[1.0, 1.0, 1.0])
}

/// The decision region of class `c` (0, 1 or 2) as a quadrilateral: the class's corner,
/// the midpoint of the edge to the next corner, the centroid, and the midpoint of the
/// edge to the previous corner.
pub fn decision_region(c: usize) -> [(f64, f64); 4] {
    let v = |i: usize| VERTICES[i % 3];
    [v(c), midpoint(v(c), v(c + 1)), centroid(), midpoint(v(c), v(c + 2))]
}

/// Samples to place in the simplex: probabilities `[N, 3]` row-major and true labels.
#[derive(Clone, Debug, Default)]
pub struct Points {
    pub probs: Vec<f32>,
    pub labels: Vec<u32>,
}

/// One snapshot of a model (e.g. after an epoch): its outputs on the training samples
/// (drawn as dots) and on the test samples (drawn as rings), under a title.
#[derive(Clone, Debug)]
pub struct SimplexFrame {
    pub title: String,
    pub train: Points,
    pub test: Points,
}

fn check(frames: &[SimplexFrame], class_names: &[String], path: &Path) -> Result<()> {
    if class_names.len() != 3 {
        return Err(Error::shape("plot_simplex_sheet", "3 classes", class_names.len()));
    }
    if frames.is_empty() {
        return Err(Error::format(path, "no frames to draw"));
    }
    for f in frames {
        for p in [&f.train, &f.test] {
            super::confusion::check_shapes(&p.labels, &p.probs, 3)?;
        }
    }
    Ok(())
}

/// Draws `frames` side by side, `cols` to a row (small multiples), into `<stem>.svg` and
/// `<stem>.png`: each frame's triangle with the decision regions shaded in their class's
/// colour, the samples' probabilities as points coloured by true class, and the class
/// names at the corners. Returns the files written.
pub fn plot_simplex_sheet(
    frames: &[SimplexFrame],
    class_names: &[String],
    cols: usize,
    stem: &Path,
) -> Result<Vec<PathBuf>> {
    check(frames, class_names, &stem.with_extension("svg"))?;
    save(&Sheet { frames, names: class_names, cols: cols.clamp(1, frames.len()), panel: 300, dot: 2 }, stem)
}

/// One frame alone as RGB pixels (`side` wide, 3 bytes a pixel, row-major), for an
/// animation; returns the pixels and their height.
pub fn simplex_frame_rgb(frame: &SimplexFrame, class_names: &[String], side: u32) -> Result<(Vec<u8>, u32)> {
    let path = Path::new("simplex animation frame");
    let frames = std::slice::from_ref(frame);
    check(frames, class_names, path)?;
    let sheet = Sheet { frames, names: class_names, cols: 1, panel: side as i32, dot: 3 };
    let h = sheet.size().1;
    Ok((render_rgb(&sheet, path)?, h))
}

struct Sheet<'a> {
    frames: &'a [SimplexFrame],
    names: &'a [String],
    cols: usize,
    /// Side of one frame's square panel, and the dots' radius, in pixels.
    panel: i32,
    dot: i32,
}

const HEADER: i32 = 78;
const PAD: i32 = 10;
/// Space between rows of panels.
const ROW_GAP: i32 = 16;

impl Sheet<'_> {
    /// Draws frame `f` in the panel whose top-left corner is `(ox, oy)`.
    fn panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        f: &SimplexFrame,
        ox: i32,
        oy: i32,
    ) -> DrawResult<DB> {
        let p = self.panel;
        root.draw(&Text::new(
            f.title.as_str(),
            (ox + p / 2, oy + 4),
            font(14.0).pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
        // The triangle fills the panel below the title, leaving room for the corner labels.
        let side = ((p - 2 * 28) as f64).min((p - 24 - 2 * 22) as f64 / VERTICES[2].1);
        let left = ox as f64 + (p as f64 - side) / 2.0;
        let base = (oy + p - 24) as f64;
        let at = |(x, y): (f64, f64)| ((left + x * side).round() as i32, (base - y * side).round() as i32);
        for c in 0..3 {
            let quad: Vec<(i32, i32)> = decision_region(c).iter().map(|&q| at(q)).collect();
            root.draw(&Polygon::new(quad, color(c).mix(0.13).filled()))?;
        }
        let mid = centroid();
        for c in 0..3 {
            let edge = midpoint(VERTICES[c], VERTICES[(c + 1) % 3]);
            root.draw(&PathElement::new(vec![at(mid), at(edge)], RGBColor(150, 150, 150).stroke_width(1)))?;
        }
        let corners: Vec<(i32, i32)> = VERTICES.iter().chain(&VERTICES[..1]).map(|&v| at(v)).collect();
        root.draw(&PathElement::new(corners, BLACK.stroke_width(1)))?;
        let label = |c: usize| self.names[c].as_str();
        let (v0, v1, v2) = (at(VERTICES[0]), at(VERTICES[1]), at(VERTICES[2]));
        let style = |c: usize, h: HPos, v: VPos| ink(14.0, color(c)).pos(Pos::new(h, v));
        root.draw(&Text::new(label(0), (v0.0 - 12, v0.1 + 6), style(0, HPos::Left, VPos::Top)))?;
        root.draw(&Text::new(label(1), (v1.0 + 12, v1.1 + 6), style(1, HPos::Right, VPos::Top)))?;
        root.draw(&Text::new(label(2), (v2.0, v2.1 - 6), style(2, HPos::Center, VPos::Bottom)))?;
        let points = |pts: &Points| {
            let labels = pts.labels.iter().map(|&l| l as usize).collect::<Vec<_>>();
            pts.probs.chunks_exact(3).map(|p| at(barycentric(p))).zip(labels).collect::<Vec<_>>()
        };
        for (xy, c) in points(&f.train) {
            root.draw(&Circle::new(xy, self.dot, color(c).mix(0.7).filled()))?;
        }
        for (xy, c) in points(&f.test) {
            root.draw(&Circle::new(xy, self.dot + 1, color(c).stroke_width(1)))?;
        }
        Ok(())
    }
}

impl Figure for Sheet<'_> {
    fn size(&self) -> (u32, u32) {
        let rows = self.frames.len().div_ceil(self.cols) as i32;
        let w = (self.cols as i32 * self.panel + 2 * PAD).max(420);
        (w as u32, (HEADER + rows * (self.panel + ROW_GAP) - ROW_GAP + PAD) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.draw(&Text::new("Softmax outputs in the probability simplex", (PAD, PAD), font(18.0)))?;
        // Legend: a swatch per class, then what the marks mean.
        let mut x = PAD;
        for c in 0..3 {
            root.draw(&Circle::new((x + 5, PAD + 38), 5, color(c).filled()))?;
            let name = self.names[c].as_str();
            root.draw(&Text::new(name, (x + 14, PAD + 38), font(14.0).pos(Pos::new(HPos::Left, VPos::Center))))?;
            x += 14 + text_width(name, 14.0) + 18;
        }
        root.draw(&Text::new(
            "dot: training sample, ring: test sample; shaded: decision region (largest p)",
            (PAD, PAD + 52),
            ink(12.0, RGBColor(80, 80, 80)),
        ))?;
        let width = self.size().0 as i32;
        let offset = (width - self.cols as i32 * self.panel) / 2;
        for (i, f) in self.frames.iter().enumerate() {
            let ox = offset + (i % self.cols) as i32 * self.panel;
            let oy = HEADER + (i / self.cols) as i32 * (self.panel + ROW_GAP);
            self.panel(root, f, ox, oy)?;
        }
        Ok(())
    }
}
