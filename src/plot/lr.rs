//! The learning-rate figures: a sweep's training risk per rate against the step
//! ([`plot_sweep`]) and the range test's smoothed loss against the rate ([`plot_lr_find`]).

use super::curves::*;
use super::{color, save, DrawResult, Figure};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One learning rate's line on the sweep chart ([`plot_sweep`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepLine {
    /// The legend entry: `α = 0.1`, with ` (diverged)` for a diverged run.
    pub label: String,
    /// `(step, training risk)` of every logged interval, up to where the run stopped.
    pub points: Vec<(f64, f64)>,
    /// Drawn with an × at its last point.
    pub diverged: bool,
}

/// Draws a learning-rate sweep: each run's training risk against the step, one line and
/// legend entry per rate, a diverged run dashed and ending in an ×. The vertical axis runs from 0 to a
/// little above the highest risk of the runs that did not diverge; a diverged run's values
/// above it are drawn on the top edge (so a blow-up to 10³⁰ does not flatten the rest).
/// Writes `<out>.svg` and `<out>.png`; returns the files written.
pub fn plot_sweep(lines: &[SweepLine], out: &Path) -> Result<Vec<PathBuf>> {
    if lines.iter().all(|l| l.points.is_empty()) {
        return Err(Error::format(out, "no run logged a finite training risk: nothing to plot"));
    }
    save(&SweepFigure { lines: lines.to_vec() }, out)
}

struct SweepFigure {
    lines: Vec<SweepLine>,
}

impl SweepFigure {
    /// The top of the vertical axis: 10% above the highest risk of the runs that did not
    /// diverge (of the diverged runs' first points when all diverged).
    fn y_top(&self) -> f64 {
        let kept: Vec<&Vec<(f64, f64)>> = self.lines.iter().filter(|l| !l.diverged).map(|l| &l.points).collect();
        let top = if kept.iter().any(|p| !p.is_empty()) {
            y_max(kept)
        } else {
            self.lines.iter().filter_map(|l| l.points.first()).map(|p| p.1).fold(1.0, f64::max)
        };
        top * 1.1
    }
}

impl Figure for SweepFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let x_max = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).fold(1.0, f64::max);
        let y_top = self.y_top();
        let title = "Learning-rate sweep: training risk against the step";
        let mut chart = chart_on(root, title).margin_right(30).build_cartesian_2d(0f64..x_max, 0f64..y_top)?;
        grid(&mut chart.configure_mesh())
            .x_desc("step (parameter updates)")
            .y_desc("training risk (mean loss per logging interval)")
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| trim(format!("{v:.2}")))
            .draw()?;
        let mut drawn = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            // The palette without its yellow, which is hard to see on white.
            let c = color(if i >= 7 { i + 1 } else { i });
            let points: Vec<(f64, f64)> = line.points.iter().map(|&(x, y)| (x, y.min(y_top))).collect();
            drawn.push(pixels(&chart, &points));
            let diverged = line.diverged;
            let style = c.stroke_width(2);
            let series = if diverged {
                // Dashed, so diverged runs stuck at the same risk still show one another.
                let dash = 6 + 2 * i as u32;
                chart.draw_series(DashedLineSeries::new(points.iter().copied(), dash, 4, style))?
            } else {
                chart.draw_series(LineSeries::new(points.iter().copied(), style))?
            };
            series.label(line.label.as_str()).legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (22, 0)], c.stroke_width(3))
                    + Cross::new((11, 0), if diverged { 6 } else { 0 }, c.stroke_width(2))
            });
            if diverged {
                if let Some(&last) = points.last() {
                    chart.draw_series(std::iter::once(Cross::new(last, 9, c.stroke_width(3))))?;
                }
            }
        }
        draw_legend(&mut chart, &drawn)
    }
}

/// What the LR range test's chart draws ([`plot_lr_find`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LrFindSeries {
    /// `(learning rate, smoothed loss)` of every step.
    pub smoothed: Vec<(f64, f64)>,
    /// The suggestions: `(label, learning rate)`, each marked on the curve.
    pub marks: Vec<(String, f64)>,
}

/// Draws the LR range test: the exponentially smoothed loss against the learning rate
/// (log axis), the suggestions marked by vertical lines and dots. The vertical axis stops a
/// quarter above the starting loss; the final blow-up is drawn along its top edge. Writes `<out>.svg` and
/// `<out>.png`; returns the files written.
pub fn plot_lr_find(s: &LrFindSeries, out: &Path) -> Result<Vec<PathBuf>> {
    if s.smoothed.len() < 2 {
        return Err(Error::format(out, "fewer than two steps: nothing to plot"));
    }
    save(&LrFindFigure { s: s.clone() }, out)
}

struct LrFindFigure {
    s: LrFindSeries,
}

impl Figure for LrFindFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let s = &self.s;
        let lo = s.smoothed.first().map_or(1e-7, |p| p.0);
        let hi = s.smoothed.last().map_or(10.0, |p| p.0).max(lo * 10.0);
        // From a little below the minimum to a little above the starting loss: the blow-up
        // at the end is drawn on the top edge, so it does not flatten the rest.
        let start = s.smoothed.first().map_or(1.0, |p| p.1);
        let y_top = (y_max([&s.smoothed]).min(start * 1.25)) * 1.02;
        let y_lo = s.smoothed.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y_lo = if y_lo.is_finite() { (y_lo - 0.15 * (y_top - y_lo)).max(0.0) } else { 0.0 };
        let clipped: Vec<(f64, f64)> = s.smoothed.iter().map(|&(x, y)| (x, y.min(y_top))).collect();
        let title = "Learning-rate range test: smoothed loss against the learning rate";
        let mut chart = chart_on(root, title).margin_right(30).build_cartesian_2d((lo..hi).log_scale(), y_lo..y_top)?;
        grid(&mut chart.configure_mesh())
            .x_desc("learning rate (log scale)")
            .y_desc("training loss (smoothed, β = 0.98)")
            .x_label_formatter(&|v| sci(*v))
            .y_label_formatter(&|v| trim(format!("{v:.2}")))
            .draw()?;
        let c = color(0);
        chart
            .draw_series(LineSeries::new(clipped.iter().copied(), c.stroke_width(2)))?
            .label("smoothed loss of each mini-batch")
            .legend(move |at| line_marker(at, c, 3));
        let mut drawn = vec![pixels(&chart, &clipped)];
        for (i, (label, lr)) in s.marks.iter().enumerate() {
            let mc = color(i + 1);
            // The smoothed loss at the nearest step to the mark.
            let y = s.smoothed.iter().min_by(|a, b| (a.0 / lr).ln().abs().total_cmp(&(b.0 / lr).ln().abs()));
            let Some(&(_, y)) = y else { continue };
            let vline = vec![(*lr, y_lo), (*lr, y_top)];
            drawn.push(pixels(&chart, &vline));
            chart.draw_series(DashedLineSeries::new(vline, 6, 4, mc.stroke_width(2)))?;
            chart
                .draw_series(std::iter::once(Circle::new((*lr, y), 6, mc.filled())))?
                .label(format!("{label}: {}", sci(*lr)))
                .legend(move |at| line_dot_marker(at, mc));
        }
        draw_legend(&mut chart, &drawn)
    }
}
