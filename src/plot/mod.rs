//! Figures of a run, drawn with `plotters` into SVG (always) and PNG files:
//!
//! - [`curves`]: the training risk per logging interval, the test loss per epoch and the
//!   learning rate against the step (`loss`), accuracies per epoch (`accuracy`), and
//!   several runs' training risk on one set of axes ([`plot_overlay`]);
//! - [`mod@confusion`]: the confusion matrix as a heat map with per-class accuracy, and as a
//!   text table for the terminal;
//! - [`images`]: the test images the model gets most confidently wrong;
//! - [`simplex`]: three-class softmax outputs as points in the 2-simplex.
//!
//! The series each figure draws come from the run folder's own records ([`crate::run::RunLog`]) and are exposed
//! as functions of their own, so the tests check that what is drawn is what was logged.
//! Text uses an embedded DejaVu Sans subset (`assets/`), so figures render the same on a
//! machine without fonts.

pub mod confusion;
pub mod curves;
pub mod filters;
pub mod images;
pub mod lr;
mod pixels;
pub mod simplex;

pub use confusion::{confusion, confusion_table, per_class_accuracy};
pub use curves::{accuracy_series, loss_series, overlay_series, plot_overlay, plot_run, XAxis};
pub use images::confident_mistakes;
pub use lr::{plot_lr_find, plot_sweep, LrFindSeries, SweepLine};

use crate::data::Dataset;
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The font every figure's text is set in: DejaVu Sans, cut down to the characters the
/// figures use (see `assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");

/// The family name figures ask for; the embedded font is registered under it.
const FAMILY: &str = "sans-serif";

/// The result of drawing onto a backend.
pub(crate) type DrawResult<DB> = std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can draw itself on any plotters backend (SVG text or RGB pixels).
pub(crate) trait Figure {
    /// Width and height in pixels (SVG user units).
    fn size(&self) -> (u32, u32);
    /// Draws the whole figure onto `root`, which is `size()` large and still blank.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// The embedded font, parsed once, and registered with plotters (which measures text
/// with it); `None` if it cannot be.
fn embedded_font() -> Option<&'static ab_glyph::FontRef<'static>> {
    static FONT_REF: OnceLock<Option<ab_glyph::FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).ok()?;
            ab_glyph::FontRef::try_from_slice(FONT).ok()
        })
        .as_ref()
}

/// The embedded font; `path` names the figure in the error.
fn ensure_font(path: &Path) -> Result<&'static ab_glyph::FontRef<'static>> {
    embedded_font()
        .ok_or_else(|| Error::format(path, "the embedded font (assets/DejaVuSans-subset.ttf) could not be loaded"))
}

/// The width in pixels of `text` set at `size` in the embedded font (estimated from the
/// character count if the font cannot measure it).
pub(crate) fn text_width(text: &str, size: f64) -> i32 {
    match embedded_font() {
        Some(f) => pixels::metrics(f, size, text).0.ceil() as i32,
        None => (text.chars().count() as f64 * size * 0.6) as i32,
    }
}

/// `fig` as SVG text; `path` names the file in error messages.
pub(crate) fn render_svg(fig: &impl Figure, path: &Path) -> Result<String> {
    ensure_font(path)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, fig.size()).into_drawing_area();
        root.fill(&WHITE).and_then(|()| fig.draw(&root)).and_then(|()| root.present()).map_err(|e| drawing(path, e))?;
    }
    Ok(svg)
}

/// `fig` as RGB pixels, row-major, 3 bytes per pixel; `path` names the file in errors.
pub(crate) fn render_rgb(fig: &impl Figure, path: &Path) -> Result<Vec<u8>> {
    let font = ensure_font(path)?;
    let (w, h) = fig.size();
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = pixels::Pixels { inner: BitMapBackend::with_buffer(&mut rgb, (w, h)), font }.into_drawing_area();
        root.fill(&WHITE).and_then(|()| fig.draw(&root)).and_then(|()| root.present()).map_err(|e| drawing(path, e))?;
    }
    Ok(rgb)
}

fn drawing(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("drawing the figure failed: {e}"))
}

/// Encodes RGB pixels (`width × height`, 3 bytes each, row-major) as a PNG file's bytes.
pub(crate) fn encode_png(rgb: &[u8], width: u32, height: u32) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut w = enc.write_header().map_err(|e| e.to_string())?;
    w.write_image_data(rgb).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

/// Writes `fig` as `<stem>.svg` and `<stem>.png`, returning both paths.
pub(crate) fn save(fig: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    let svg_path = stem.with_extension("svg");
    let png_path = stem.with_extension("png");
    let svg = render_svg(fig, &svg_path)?;
    crate::files::write_atomic(&svg_path, svg.as_bytes())?;
    let (w, h) = fig.size();
    let png = encode_png(&render_rgb(fig, &png_path)?, w, h)
        .map_err(|e| Error::format(&png_path, format!("encoding the PNG failed: {e}")))?;
    crate::files::write_atomic(&png_path, &png)?;
    Ok(vec![svg_path, png_path])
}

/// Colours for series and classes: the Okabe–Ito palette (distinguishable with the common
/// colour-vision deficiencies), then Tableau's for more than eight.
const PALETTE: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(148, 103, 189),
];

/// The colour of series or class `i` (the palette repeats past its end).
pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A text style in the embedded font, black.
pub(crate) fn font(size: f64) -> TextStyle<'static> {
    ink(size, BLACK)
}

/// A text style in the embedded font, in colour `c`.
pub(crate) fn ink(size: f64, c: RGBColor) -> TextStyle<'static> {
    TextStyle { font: (FAMILY, size).into_font(), color: c.to_backend_color(), pos: Default::default() }
}

/// Every figure for a finished run, written into `run_dir`: `loss` and `accuracy` from its
/// `metrics.jsonl` ([`plot_run`]), `confusion` (the test set's confusion matrix with
/// per-class accuracy) and, when the test samples are square grayscale images, `mistakes`
/// (the most confidently misclassified test images), and for a model with a convolution
/// `filters` (its first convolution's filters, from `weights`: the model and its flat
/// parameters). `probs` are the model's softmax probabilities on `test`, `[N, C]`
/// row-major (as `Engine::predict` returns them). Returns the files written, SVG and PNG
/// for each figure.
pub fn write_run_figures(
    run_dir: &Path,
    test: &Dataset,
    probs: &[f32],
    class_names: &[String],
    weights: (&crate::model::Model, &[f32]),
) -> Result<Vec<PathBuf>> {
    let mut written = plot_run(run_dir)?;
    written.extend(filters::plot_filters(weights.0, weights.1, &run_dir.join("filters"))?);
    let matrix = confusion(&test.labels, probs, class_names.len())?;
    written.extend(confusion::plot_confusion(&matrix, class_names, &run_dir.join("confusion"))?);
    written.extend(images::plot_mistakes(test, probs, class_names, images::GRID_IMAGES, &run_dir.join("mistakes"))?);
    Ok(written)
}

/// Every figure of a finished run (see [`write_run_figures`]) from the model's
/// probabilities `probs` on `split.test`, and the confusion matrix as a terminal table.
pub fn test_figures(
    run_dir: &Path,
    split: &crate::data::Split,
    probs: &[f32],
    weights: (&crate::model::Model, &[f32]),
) -> Result<(String, Vec<PathBuf>)> {
    let m = confusion(&split.test.labels, probs, split.class_names.len())?;
    let table = confusion_table(&m, &split.class_names);
    Ok((table, write_run_figures(run_dir, &split.test, probs, &split.class_names, weights)?))
}

/// A run's figures redrawn from its folder: the learning curves, and, when its weights
/// and the data named in its `config.json` load, the test set's figures (predicted on the
/// CPU) with the confusion table. The table is `None` when only the curves could be drawn.
pub fn redraw_run(run_dir: &Path) -> Result<(Option<String>, Vec<PathBuf>)> {
    use crate::engine::Engine;
    let weights = run_dir.join(crate::run::MODEL_FILE);
    let Some(mut cfg) = crate::run::RunConfig::read(run_dir).ok().filter(|_| weights.is_file()) else {
        return Ok((None, plot_run(run_dir)?));
    };
    let split = cfg.data.load()?;
    let w = crate::checkpoint::load_weights(&weights)?;
    if split.test.width != w.model.inputs() {
        return Err(Error::format(
            &weights,
            format!("the model takes {} features, the run's data has {}", w.model.inputs(), split.test.width),
        ));
    }
    let mut engine =
        crate::engine::CpuEngine::new(&w.model, w.params.clone(), crate::optim::OptimKind::Sgd, crate::train::CHUNK);
    let probs = engine.predict(&split.test)?;
    let (table, files) = test_figures(run_dir, &split, &probs, (&w.model, &w.params))?;
    Ok((Some(table), files))
}

/// Redraws a run's loss and accuracy figures after each epoch while it trains, so a
/// user can watch `loss.png`: at most every [`LiveFigures::EVERY`], and only while the
/// drawing has cost at most 5 % of the time the run has taken. Everything else goes to
/// the `inner` observer.
pub struct LiveFigures<'o> {
    inner: &'o mut dyn crate::train::Observer,
    dir: PathBuf,
    started: std::time::Instant,
    /// Time spent drawing so far, and when the last drawing ended.
    spent: std::time::Duration,
    last: Option<std::time::Instant>,
}

impl<'o> LiveFigures<'o> {
    /// The shortest time between two redraws.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn new(inner: &'o mut dyn crate::train::Observer, dir: &Path) -> Self {
        let started = std::time::Instant::now();
        LiveFigures { inner, dir: dir.to_path_buf(), started, spent: Default::default(), last: None }
    }

    /// Whether a redraw now keeps within the interval and the 5 % budget (the next
    /// drawing is assumed to cost what the last ones did on average).
    fn due(&self) -> bool {
        let spaced = self.last.is_none_or(|l| l.elapsed() >= Self::EVERY);
        spaced && self.spent.as_secs_f64() <= 0.05 * self.started.elapsed().as_secs_f64()
    }
}

impl crate::train::Observer for LiveFigures<'_> {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        self.inner.epoch_start(epoch, epochs, steps);
    }

    fn step(&mut self, done: usize, running_loss: Option<f64>, samples_per_s: f64) {
        self.inner.step(done, running_loss, samples_per_s);
    }

    fn epoch_end(&mut self, r: &crate::train::EpochRecord) {
        self.inner.epoch_end(r);
        if self.due() {
            let t = std::time::Instant::now();
            // A figure that cannot be drawn must not stop the run; the final drawing reports.
            let _ = plot_run(&self.dir);
            self.spent += t.elapsed();
            self.last = Some(std::time::Instant::now());
        }
    }

    fn note(&mut self, msg: &str) {
        self.inner.note(msg);
    }
}
