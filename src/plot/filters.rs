//! The first convolution's learned filters as a grid of small images: what the network
//! looks for in the pixels. Each `k×k` filter is drawn on its own scale — red where a
//! weight is positive, blue where negative, white at zero, full colour at the filter's
//! largest magnitude — averaged over the input channels when there are several.

use super::{font, save, DrawResult, Figure};
use crate::error::Result;
use crate::model::{Model, Op};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// Filters per row of the grid.
const COLS: usize = 8;
const HEADER_H: i32 = 56;
const PAD: i32 = 12;
const GAP: i32 = 10;
/// Screen pixels of a filter's side, about.
const CELL: i32 = 72;

/// Draws the filters of `model`'s first Conv2d layer, its weights taken from `params`
/// (the flat vector), into `<stem>.svg` and `<stem>.png`. Returns no files when the model
/// has no convolution.
pub fn plot_filters(model: &Model, params: &[f32], stem: &Path) -> Result<Vec<PathBuf>> {
    let Some((node, s)) = model.nodes().iter().find_map(|n| match n.op {
        Op::Conv2d(s) => Some((n, s)),
        _ => None,
    }) else {
        return Ok(Vec::new());
    };
    let w = &params[node.w_off..node.b_off];
    let taps = s.k * s.k;
    let filters = (0..s.c_out)
        .map(|co| {
            (0..taps)
                .map(|t| (0..s.c_in).map(|ci| w[(co * s.c_in + ci) * taps + t]).sum::<f32>() / s.c_in as f32)
                .collect()
        })
        .collect();
    let fig = FiltersFigure { layer: node.layer, k: s.k, c_in: s.c_in, filters };
    save(&fig, stem)
}

struct FiltersFigure {
    layer: usize,
    k: usize,
    c_in: usize,
    /// `[C_out][k·k]`, channel-averaged.
    filters: Vec<Vec<f32>>,
}

impl FiltersFigure {
    /// Screen pixels per filter tap.
    fn scale(&self) -> i32 {
        (CELL / self.k as i32).max(2)
    }

    fn side(&self) -> i32 {
        self.scale() * self.k as i32
    }
}

/// Red for positive `v`, blue for negative, white at 0, by `|v| / max` in `[0, 1]`.
fn diverging(v: f32, max: f32) -> RGBColor {
    let t = if max > 0.0 { (v.abs() / max).min(1.0) } else { 0.0 };
    let fade = (255.0 * (1.0 - t)).round() as u8;
    if v >= 0.0 {
        RGBColor(255, fade, fade)
    } else {
        RGBColor(fade, fade, 255)
    }
}

impl Figure for FiltersFigure {
    fn size(&self) -> (u32, u32) {
        let rows = self.filters.len().div_ceil(COLS) as i32;
        let cols = self.filters.len().min(COLS) as i32;
        let cell = self.side() + GAP;
        ((2 * PAD + cols * cell).max(520) as u32, (HEADER_H + rows * cell + PAD) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let channels =
            if self.c_in > 1 { format!(", averaged over {} input channels", self.c_in) } else { String::new() };
        root.draw(&Text::new(
            format!(
                "The {} learned {k}×{k} filters of layer {} (Conv2d){channels}",
                self.filters.len(),
                self.layer,
                k = self.k
            ),
            (PAD, PAD),
            font(18.0),
        ))?;
        root.draw(&Text::new(
            "red: positive weight, blue: negative, each filter on its own scale",
            (PAD, PAD + 22),
            font(13.0),
        ))?;
        let (s, side) = (self.scale(), self.side());
        for (n, f) in self.filters.iter().enumerate() {
            let x0 = PAD + (n % COLS) as i32 * (side + GAP);
            let y0 = HEADER_H + (n / COLS) as i32 * (side + GAP);
            let max = f.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (t, &v) in f.iter().enumerate() {
                let (x, y) = (x0 + (t % self.k) as i32 * s, y0 + (t / self.k) as i32 * s);
                root.draw(&Rectangle::new([(x, y), (x + s, y + s)], diverging(v, max).filled()))?;
            }
            root.draw(&Rectangle::new([(x0, y0), (x0 + side, y0 + side)], RGBColor(160, 160, 160).stroke_width(1)))?;
        }
        Ok(())
    }
}
