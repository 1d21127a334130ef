//! Images for `wgtrain predict`: PNG files of any colour type, up to [`MAX_IMAGE_SIDE`]
//! pixels a side, turned into the model's input: grayscale (ITU-R BT.601 luma), resized by area averaging (box filter)
//! to `side × side`, scaled to [0, 1] like the training pixels.

use crate::error::{Error, Result};
use std::path::Path;

/// The widest and tallest image read: the header's size is checked before anything is
/// decoded or allocated.
pub const MAX_IMAGE_SIDE: usize = 8192;

/// Reads a PNG and returns `side × side` grayscale values in [0, 1], row-major.
pub fn load_png(path: &Path, side: usize) -> Result<Vec<f32>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // The size from the IHDR chunk's first bytes, before the decoder sets anything up.
    let mut head = [0u8; 24];
    let n = std::io::Read::read(&mut file, &mut head).map_err(|e| Error::io(path, e))?;
    if n == head.len() && head[..8] == *b"\x89PNG\r\n\x1a\n" && head[12..16] == *b"IHDR" {
        let side = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        check_size(path, side(&head[16..20]), side(&head[20..24]))?;
    }
    std::io::Seek::rewind(&mut file).map_err(|e| Error::io(path, e))?;
    let fail = |e: png::DecodingError| Error::format(path, format!("not a readable PNG image: {e}"));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(fail)?;
    check_size(path, reader.info().width, reader.info().height)?;
    let size = reader.output_buffer_size().ok_or_else(|| Error::format(path, "image too large to decode"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(fail)?;
    let (w, h) = (info.width as usize, info.height as usize);
    if w == 0 || h == 0 {
        return Err(Error::format(path, "an empty image"));
    }
    let channels = info.color_type.samples();
    let gray: Vec<f32> = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|px| match px.len() {
            1 | 2 => f32::from(px[0]),
            _ => 0.299 * f32::from(px[0]) + 0.587 * f32::from(px[1]) + 0.114 * f32::from(px[2]),
        })
        .collect();
    Ok(resize_area(&gray, w, h, side).into_iter().map(|v| v / 255.0).collect())
}

fn check_size(path: &Path, w: u32, h: u32) -> Result<()> {
    if w as usize > MAX_IMAGE_SIDE || h as usize > MAX_IMAGE_SIDE {
        return Err(Error::format(
            path,
            format!("a {w}×{h} image, larger than the {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels predict reads"),
        ));
    }
    Ok(())
}

/// Box-filter resize of a `w × h` image to `side × side`: each output pixel is the
/// area-weighted mean of the input pixels it covers.
pub fn resize_area(img: &[f32], w: usize, h: usize, side: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; side * side];
    let (sx, sy) = (w as f64 / side as f64, h as f64 / side as f64);
    for oy in 0..side {
        let (y0, y1) = (oy as f64 * sy, (oy + 1) as f64 * sy);
        for ox in 0..side {
            let (x0, x1) = (ox as f64 * sx, (ox + 1) as f64 * sx);
            let (mut sum, mut area) = (0.0f64, 0.0f64);
            for y in y0.floor() as usize..(y1.ceil() as usize).min(h) {
                let fy = (y1.min(y as f64 + 1.0) - y0.max(y as f64)).max(0.0);
                for x in x0.floor() as usize..(x1.ceil() as usize).min(w) {
                    let fx = (x1.min(x as f64 + 1.0) - x0.max(x as f64)).max(0.0);
                    sum += f64::from(img[y * w + x]) * fx * fy;
                    area += fx * fy;
                }
            }
            out[oy * side + ox] = (sum / area.max(f64::MIN_POSITIVE)) as f32;
        }
    }
    out
}
