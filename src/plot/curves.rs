//! Learning curves from a run's log: the loss figure (training risk per logging interval,
//! validation and test loss per epoch, learning rate on a second axis), the accuracy figure, and the
//! overlay of several runs' training risk against steps, samples seen or seconds.

use super::{color, font, save, DrawResult, Figure};
use crate::error::{Error, Result};
use crate::run::RunLog;
use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::BackendCoord;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What the loss figure draws, as `(x, y)` points; records with a non-finite value are
/// left out (they cannot be drawn).
#[derive(Clone, Debug, PartialEq)]
pub struct LossSeries {
    /// `(step, train_loss)` of every interval record: the training risk, estimated by the
    /// mean loss over the interval's batches, at the step that ended the interval.
    pub train: Vec<(f64, f64)>,
    /// `(step, val_loss)` of every epoch record: the validation loss at the epoch's final
    /// step (empty without a validation set).
    pub val: Vec<(f64, f64)>,
    /// `(step, test_loss)` of every epoch record: the test loss at the epoch's final step.
    pub test: Vec<(f64, f64)>,
    /// `(step, lr)` of every interval record: the learning rate of the interval's last step.
    pub lr: Vec<(f64, f64)>,
}

/// What the accuracy figure draws: `(epoch, accuracy)` from the epoch records.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracySeries {
    /// The fraction of training samples classified correctly during the epoch (while the
    /// weights were still changing).
    pub train: Vec<(f64, f64)>,
    /// The fraction of validation samples classified correctly after the epoch (empty
    /// without a validation set).
    pub val: Vec<(f64, f64)>,
    /// The fraction of test samples classified correctly after the epoch.
    pub test: Vec<(f64, f64)>,
}

/// The loss figure's series from a run's log.
pub fn loss_series(log: &RunLog) -> LossSeries {
    LossSeries {
        train: finite(log.intervals.iter().map(|r| (r.step as f64, r.train_loss))),
        val: finite(log.epochs.iter().map(|r| (r.step as f64, r.val_loss))),
        test: finite(log.epochs.iter().map(|r| (r.step as f64, r.test_loss))),
        lr: finite(log.intervals.iter().map(|r| (r.step as f64, f64::from(r.lr)))),
    }
}

/// The accuracy figure's series from a run's log.
pub fn accuracy_series(log: &RunLog) -> AccuracySeries {
    AccuracySeries {
        train: finite(log.epochs.iter().map(|r| (r.epoch as f64, r.train_acc))),
        val: finite(log.epochs.iter().map(|r| (r.epoch as f64, r.val_acc))),
        test: finite(log.epochs.iter().map(|r| (r.epoch as f64, r.test_acc))),
    }
}

pub(super) fn finite(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    points.filter(|(x, y)| x.is_finite() && y.is_finite()).collect()
}

/// The horizontal axis of an overlay of runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    /// The iteration index (parameter updates so far).
    #[value(alias = "steps")]
    Step,
    /// Training samples processed so far (the cost in gradient evaluations).
    #[value(alias = "sample")]
    Samples,
    /// Wall-clock seconds since training started.
    #[value(aliases = ["time", "s"])]
    Seconds,
}

impl XAxis {
    /// Parses `step`, `samples` or `seconds` (also `steps`, `sample`, `time`, `s`).
    pub fn parse(s: &str) -> Result<XAxis> {
        <XAxis as clap::ValueEnum>::from_str(s, false).map_err(|_| Error::invalid("--x", s, "step, samples or seconds"))
    }

    /// The axis title.
    pub fn title(self) -> &'static str {
        match self {
            XAxis::Step => "step (parameter updates)",
            XAxis::Samples => "training samples seen",
            XAxis::Seconds => "wall-clock seconds",
        }
    }

    /// The file name stem an overlay is saved under by default.
    pub fn stem(self) -> &'static str {
        match self {
            XAxis::Step => "overlay-step",
            XAxis::Samples => "overlay-samples",
            XAxis::Seconds => "overlay-seconds",
        }
    }
}

/// What the overlay draws for one run: `(x, train_loss)` of every interval record, with
/// `x` the record's step, samples seen or elapsed seconds.
pub fn overlay_series(log: &RunLog, x: XAxis) -> Vec<(f64, f64)> {
    finite(log.intervals.iter().map(|r| {
        let x = match x {
            XAxis::Step => r.step as f64,
            XAxis::Samples => r.samples_seen as f64,
            XAxis::Seconds => r.elapsed_s,
        };
        (x, r.train_loss)
    }))
}

/// Redraws a run's learning curves from its `metrics.jsonl`: `loss.svg/png` (training
/// risk per logging interval and test loss per epoch against the step, the learning rate
/// on the right axis) and `accuracy.svg/png` (training and test accuracy per epoch; left
/// out when no epoch has finished). Returns the files written.
pub fn plot_run(run_dir: &Path) -> Result<Vec<PathBuf>> {
    let log = RunLog::read(run_dir)?;
    if log.intervals.is_empty() && log.epochs.is_empty() {
        return Err(Error::format(run_dir.join("metrics.jsonl"), "no interval or epoch records: nothing to plot"));
    }
    let mut written =
        save(&LossFigure { title: format!("Loss: {}", log.label), s: loss_series(&log) }, &run_dir.join("loss"))?;
    if !log.epochs.is_empty() {
        let fig = AccuracyFigure { title: format!("Accuracy: {}", log.label), s: accuracy_series(&log) };
        written.extend(save(&fig, &run_dir.join("accuracy"))?);
    }
    Ok(written)
}

/// Draws the training risk of several runs (one line each, from their interval records,
/// labelled by folder name and configuration) against `x` into `out` (`.svg` and `.png`
/// are put in place of any extension). The horizontal axis is logarithmic when the runs'
/// `x` values span more than three decades (e.g. steps of batch gradient descent and pure
/// SGD). Returns the files written.
pub fn plot_overlay(runs: &[PathBuf], x: XAxis, out: &Path) -> Result<Vec<PathBuf>> {
    if runs.is_empty() {
        return Err(Error::invalid("runs", "none", "at least one run folder"));
    }
    let mut lines = Vec::new();
    for dir in runs {
        let log = RunLog::read(dir)?;
        let points = overlay_series(&log, x);
        if points.is_empty() {
            return Err(Error::format(dir.join("metrics.jsonl"), "no interval records with a finite loss to plot"));
        }
        lines.push((log.label, points));
    }
    save(&OverlayFigure { x, lines }, out)
}

pub(super) const SIZE: (u32, u32) = (960, 560);

/// Tick labels for counts: 950, 12k, 1.2M.
pub(super) fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        trim(format!("{:.1}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 1.0 || a == 0.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// Tick labels for learning rates: 1e-3, 2.5e-4.
pub(super) fn sci(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let s = format!("{v:.1e}");
    s.replace(".0e", "e")
}

pub(super) fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The largest finite `y` of the series (1 when there is none).
pub(super) fn y_max<'a>(series: impl IntoIterator<Item = &'a Vec<(f64, f64)>>) -> f64 {
    let m = series.into_iter().flatten().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if m.is_finite() && m > 0.0 {
        m
    } else {
        1.0
    }
}

/// The corner of the plotting area (`x` and `y` pixel ranges) where a legend of about
/// 40% × 30% of it covers the least of the drawn lines (`series`, in pixels): upper right
/// unless that is busier than another corner.
pub(super) fn legend_corner(area: (Range<i32>, Range<i32>), series: &[Vec<(i32, i32)>]) -> SeriesLabelPosition {
    let (xr, yr) = area;
    let w = f64::from((xr.end - xr.start).max(1));
    let h = f64::from((yr.end - yr.start).max(1));
    // Each line as points along it (eight per segment), as fractions from the bottom left.
    let mut along = Vec::new();
    for line in series {
        let frac = |(x, y): (i32, i32)| (f64::from(x - xr.start) / w, f64::from(yr.end - y) / h);
        along.extend(line.first().map(|&p| frac(p)));
        for pair in line.windows(2) {
            let (a, b) = (frac(pair[0]), frac(pair[1]));
            along.extend((1..=8).map(|k| {
                let t = f64::from(k) / 8.0;
                (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t)
            }));
        }
    }
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let covered = |right: bool, top: bool| {
        along
            .iter()
            .filter(|&&(x, y)| (if right { x > 0.6 } else { x < 0.4 }) && (if top { y > 0.7 } else { y < 0.3 }))
            .count()
    };
    let best = corners.into_iter().min_by_key(|&(_, right, top)| covered(right, top));
    best.map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

/// A chart on `root` laid out as every curve figure is: `title` above in 20 px type, a
/// 16 px margin, 50 px below for the x labels and 70 px on the left for the y labels.
pub(super) fn chart_on<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, font(20.0)).margin(16).x_label_area_size(50).y_label_area_size(70);
    builder
}

/// Styles `mesh` as every curve figure's grid: 14 px tick labels, 16 px axis titles, light
/// grey lines at the labelled ticks and fainter ones (at most four) between them.
pub(super) fn grid<'m, 'a, 'b, X: Ranged, Y: Ranged, DB: DrawingBackend>(
    mesh: &'m mut MeshStyle<'a, 'b, X, Y, DB>,
) -> &'m mut MeshStyle<'a, 'b, X, Y, DB> {
    mesh.label_style(font(14.0))
        .axis_desc_style(font(16.0))
        .bold_line_style(RGBColor(215, 215, 215))
        .light_line_style(RGBColor(243, 243, 243))
        .max_light_lines(4)
}

/// `points` in the chart's pixel coordinates.
pub(super) fn pixels<DB, X, Y>(
    chart: &ChartContext<'_, DB, Cartesian2d<X, Y>>,
    points: &[(f64, f64)],
) -> Vec<BackendCoord>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    points.iter().map(|p| chart.backend_coord(p)).collect()
}

/// The legend marker of a plain line: a line 22 px long and `width` px wide in `c`,
/// starting at `(x, y)`.
pub(super) fn line_marker((x, y): BackendCoord, c: RGBColor, width: u32) -> PathElement<BackendCoord> {
    PathElement::new(vec![(x, y), (x + 22, y)], c.stroke_width(width))
}

/// The legend marker of a line through dots: a line 22 px long and 2 px wide in `c`,
/// starting at `at`, with a dot of radius 4 in its middle.
pub(super) fn line_dot_marker<'a, DB: DrawingBackend + 'a>(
    at: BackendCoord,
    c: RGBColor,
) -> impl IntoDynElement<'a, DB, BackendCoord> {
    EmptyElement::at(at)
        + PathElement::new(vec![(0, 0), (22, 0)], c.stroke_width(2))
        + Circle::new((11, 0), 4, c.filled())
}

/// Draws the legend of the chart's labelled series, in the corner where it covers the least
/// of the `drawn` lines (in pixels): 14 px labels in a 90% white box with a faint border.
/// A line through `points` with a dot on each and a legend entry `name`; nothing for an
/// empty series (no validation set, say).
fn dotted_line<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: &[(f64, f64)],
    c: RGBColor,
    name: String,
) -> DrawResult<DB> {
    if points.is_empty() {
        return Ok(());
    }
    chart.draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, c.filled())))?
        .label(name)
        .legend(move |at| line_dot_marker(at, c));
    Ok(())
}

pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    drawn: &[Vec<BackendCoord>],
) -> DrawResult<DB> {
    let corner = legend_corner(chart.plotting_area().get_pixel_range(), drawn);
    chart
        .configure_series_labels()
        .position(corner)
        .label_font(font(14.0))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
}

struct LossFigure {
    title: String,
    s: LossSeries,
}

impl Figure for LossFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let s = &self.s;
        let x_max = s.train.iter().chain(&s.test).map(|p| p.0).fold(1.0, f64::max);
        let y_top = y_max([&s.train, &s.val, &s.test]) * 1.05;
        let lr_top = y_max([&s.lr]) * 1.1;
        let mut chart = chart_on(root, &self.title)
            .right_y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_top)?
            .set_secondary_coord(0f64..x_max, 0f64..lr_top);
        grid(&mut chart.configure_mesh())
            .x_desc("step (parameter updates)")
            .y_desc("cross-entropy loss")
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| trim(format!("{v:.2}")))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("learning rate")
            .y_label_formatter(&|v| sci(*v))
            .label_style(font(14.0))
            .axis_desc_style(font(16.0))
            .draw()?;
        let (train_c, test_c, lr_c, val_c) = (color(0), color(1), color(2), color(3));
        chart
            .draw_secondary_series(DashedLineSeries::new(s.lr.iter().copied(), 8, 5, lr_c.stroke_width(2)))?
            .label("learning rate (right axis)")
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (8, 0)], lr_c.stroke_width(2))
                    + PathElement::new(vec![(13, 0), (22, 0)], lr_c.stroke_width(2))
            });
        chart
            .draw_series(LineSeries::new(s.train.iter().copied(), train_c.stroke_width(1)))?
            .label("training risk (mean loss over each logging interval)")
            .legend(move |at| line_marker(at, train_c, 2));
        dotted_line(&mut chart, &s.val, val_c, "validation loss (end of each epoch)".into())?;
        dotted_line(&mut chart, &s.test, test_c, "test loss (end of each epoch)".into())?;
        let drawn = [
            pixels(&chart, &s.train),
            pixels(&chart, &s.val),
            pixels(&chart, &s.test),
            pixels(chart.borrow_secondary(), &s.lr),
        ];
        draw_legend(&mut chart, &drawn)
    }
}

struct AccuracyFigure {
    title: String,
    s: AccuracySeries,
}

impl Figure for AccuracyFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let s = &self.s;
        let epochs = s.train.iter().chain(&s.test).map(|p| p.0).fold(1.0, f64::max);
        let lowest = s.train.iter().chain(&s.val).chain(&s.test).map(|p| p.1).fold(1.0, f64::min);
        // Zoom to the accuracies reached, in steps of 0.05, up to 1.
        let y_lo = ((lowest - 0.02) * 20.0).floor().clamp(0.0, 19.0) / 20.0;
        let mut chart =
            chart_on(root, &self.title).margin_right(30).build_cartesian_2d(0.5f64..epochs + 0.5, y_lo..1.0)?;
        grid(&mut chart.configure_mesh())
            .x_desc("epoch")
            .y_desc("accuracy")
            .x_labels((epochs as usize).min(20) + 1)
            .x_label_formatter(&|v| if v.fract() == 0.0 { format!("{v:.0}") } else { String::new() })
            .y_label_formatter(&|v| trim(format!("{v:.2}")))
            .draw()?;
        let last = |v: &[(f64, f64)]| v.last().map_or(String::new(), |p| format!(" (last {:.4})", p.1));
        for (points, c, name) in [
            (&s.train, color(0), format!("training accuracy during the epoch{}", last(&s.train))),
            (&s.val, color(3), format!("validation accuracy after the epoch{}", last(&s.val))),
            (&s.test, color(1), format!("test accuracy after the epoch{}", last(&s.test))),
        ] {
            dotted_line(&mut chart, points, c, name)?;
        }
        let drawn = [pixels(&chart, &s.train), pixels(&chart, &s.val), pixels(&chart, &s.test)];
        draw_legend(&mut chart, &drawn)
    }
}

struct OverlayFigure {
    x: XAxis,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

impl OverlayFigure {
    /// The positive `x` extent over all runs, and whether it spans more than three decades.
    fn x_extent(&self) -> (f64, f64, bool) {
        let xs = || self.lines.iter().flat_map(|l| l.1.iter().map(|p| p.0));
        let lo = xs().filter(|&x| x > 0.0).fold(f64::INFINITY, f64::min);
        let hi = xs().fold(1.0, f64::max);
        let log = lo.is_finite() && hi / lo > 1e3;
        (if lo.is_finite() { lo } else { 1.0 }, hi, log)
    }

    fn draw_on<DB: DrawingBackend, XR>(&self, root: &DrawingArea<DB, Shift>, x_range: XR, log: bool) -> DrawResult<DB>
    where
        XR: AsRangedCoord<Value = f64>,
        XR::CoordDescType: ValueFormatter<f64>,
    {
        let y_top = y_max(self.lines.iter().map(|l| &l.1)) * 1.05;
        let title = format!("Training risk against {}", self.x.title().split(" (").next().unwrap_or_default());
        let x_desc = if log { format!("{} (log scale)", self.x.title()) } else { self.x.title().to_string() };
        let mut chart = chart_on(root, &title).margin_right(30).build_cartesian_2d(x_range, 0f64..y_top)?;
        grid(&mut chart.configure_mesh())
            .x_desc(x_desc)
            .y_desc("training risk (mean loss per logging interval)")
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| trim(format!("{v:.2}")))
            .draw()?;
        let mut drawn = Vec::new();
        for (i, (label, points)) in self.lines.iter().enumerate() {
            let c = color(i);
            let points: Vec<(f64, f64)> = points.iter().copied().filter(|p| !log || p.0 > 0.0).collect();
            drawn.push(pixels(&chart, &points));
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))?
                .label(label.as_str())
                .legend(move |at| line_marker(at, c, 3));
        }
        draw_legend(&mut chart, &drawn)
    }
}

impl Figure for OverlayFigure {
    fn size(&self) -> (u32, u32) {
        SIZE
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (lo, hi, log) = self.x_extent();
        if log {
            self.draw_on(root, (lo..hi).log_scale(), true)
        } else {
            self.draw_on(root, 0f64..hi, false)
        }
    }
}
