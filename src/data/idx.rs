//! IDX files (the MNIST family's format), gzip'd or raw.
//!
//! Layout: magic `00 00 TT ND` (TT the element type, ND the number of dimensions),
//! then ND big-endian u32 dimensions, then the values. Only unsigned bytes (`TT = 0x08`)
//! are read. The header's claimed size is checked against what the file really holds
//! without allocating the claimed size first: raw files by their length, gzip'd ones by
//! the most their compressed size can expand to, both by [`MAX_VALUES`]; then the values
//! are read incrementally, and a stream that ends early or runs on is refused. A set's
//! two headers are read and compared ([`open_set`]) before either body.

use super::{Dataset, FeatureData};
use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// An IDX array of bytes: its dimensions and values.
#[derive(Debug, PartialEq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn type_name(t: u8) -> &'static str {
    match t {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "i16",
        0x0C => "i32",
        0x0D => "f32",
        0x0E => "f64",
        _ => "unknown",
    }
}

/// The most values one IDX file may claim (2³¹ bytes): larger claims are refused from the
/// header, before any body is read.
pub const MAX_VALUES: u64 = 1 << 31;

/// An IDX file whose header has been read and checked; [`IdxStream::body`] reads the
/// values. Nothing of the claimed size is allocated before the values arrive.
pub struct IdxStream<'r> {
    path: std::path::PathBuf,
    gz: bool,
    /// The dimensions the header claims.
    pub dims: Vec<usize>,
    claimed: u64,
    reader: Box<dyn Read + 'r>,
}

/// Opens an IDX file of unsigned bytes and reads its header.
pub fn open(path: &Path) -> Result<IdxStream<'static>> {
    if path.is_dir() {
        return Err(Error::format(path, "a directory, expected an IDX file"));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    IdxStream::new(path, std::io::BufReader::new(file), file_len)
}

/// Reads an IDX file of unsigned bytes.
pub fn read(path: &Path) -> Result<IdxArray> {
    open(path)?.into_array()
}

/// Reads IDX data of `file_len` bytes (gzip'd or raw) from `f`; `path` names it in errors.
pub fn parse(path: &Path, f: impl std::io::BufRead, file_len: u64) -> Result<IdxArray> {
    IdxStream::new(path, f, file_len)?.into_array()
}

impl<'r> IdxStream<'r> {
    /// Reads and checks the header of IDX data of `file_len` bytes from `f`.
    pub fn new(path: &Path, mut f: impl std::io::BufRead + 'r, file_len: u64) -> Result<Self> {
        let peek = std::io::BufRead::fill_buf(&mut f).map_err(|e| Error::io(path, e))?;
        let gz = peek.len() >= 2 && peek[..2] == [0x1f, 0x8b];
        let mut reader: Box<dyn Read + 'r> = if gz { Box::new(GzDecoder::new(f)) } else { Box::new(f) };
        let fail = |what: String| Error::format(path, what);
        // The header ending early: in a gzip stream that means the stream is cut short.
        let short = |what: String| if gz { fail(format!("truncated gzip data: {what}")) } else { fail(what) };
        let read_err = |e: std::io::Error| {
            if gz {
                fail(format!("corrupt or truncated gzip data: {e}"))
            } else {
                Error::io(path, e)
            }
        };

        let mut magic = [0u8; 4];
        reader.read_exact(&mut magic).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                short("too short for an IDX header (expected at least 4 bytes)".into())
            } else {
                read_err(e)
            }
        })?;
        if magic[0] != 0 || magic[1] != 0 {
            return Err(fail(format!(
                "not an IDX file: magic {:02x} {:02x} {:02x} {:02x}, expected 00 00 <type> <dims>",
                magic[0], magic[1], magic[2], magic[3]
            )));
        }
        if magic[2] != 0x08 {
            return Err(fail(format!(
                "IDX element type 0x{:02x} ({}), expected 0x08 (unsigned byte)",
                magic[2],
                type_name(magic[2])
            )));
        }
        let nd = magic[3] as usize;
        if nd == 0 || nd > 4 {
            return Err(fail(format!("IDX header claims {nd} dimensions, expected 1 to 4")));
        }
        let mut dims = Vec::with_capacity(nd);
        for i in 0..nd {
            let mut d = [0u8; 4];
            reader.read_exact(&mut d).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    short(format!("header ends before dimension {i} of {nd}"))
                } else {
                    read_err(e)
                }
            })?;
            dims.push(u32::from_be_bytes(d) as usize);
        }
        let claimed = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
        let header = 4 + 4 * nd as u64;
        if !gz && file_len != header.saturating_add(claimed) {
            return Err(fail(format!(
                "header claims {dims:?} = {claimed} values, but the file holds {} after its {header}-byte header",
                file_len.saturating_sub(header)
            )));
        }
        if claimed > MAX_VALUES {
            return Err(fail(format!(
                "header claims {dims:?} = {claimed} values, more than the {MAX_VALUES} (2^31) one IDX file may hold"
            )));
        }
        // A gzip stream expands at most ~1032:1; a claim beyond that is false before reading.
        if gz && claimed > file_len.saturating_mul(1100) {
            return Err(fail(format!(
                "header claims {dims:?} = {claimed} values, more than {file_len} compressed bytes can hold"
            )));
        }
        Ok(IdxStream { path: path.to_path_buf(), gz, dims, claimed, reader })
    }

    /// Reads the values, incrementally: a stream that ends before the claimed count, or
    /// goes on after it, is refused.
    pub fn body(mut self) -> Result<Vec<u8>> {
        let (path, gz, claimed, dims) = (&self.path, self.gz, self.claimed, &self.dims);
        let fail = |what: String| Error::format(path, what);
        let read_err = |e: std::io::Error| {
            if gz {
                fail(format!("corrupt or truncated gzip data: {e}"))
            } else {
                Error::io(path, e)
            }
        };
        // Grows with what arrives (never reserved at the claimed size up front).
        let mut data = Vec::with_capacity(claimed.min(1 << 20) as usize);
        self.reader.by_ref().take(claimed).read_to_end(&mut data).map_err(read_err)?;
        if (data.len() as u64) < claimed {
            return Err(fail(format!(
                "header claims {dims:?} = {claimed} values, but the file holds only {}",
                data.len()
            )));
        }
        if gz {
            let mut extra = [0u8; 1];
            if self.reader.read(&mut extra).map_err(read_err)? != 0 {
                return Err(fail(format!("more data after the {claimed} values the header claims")));
            }
        }
        Ok(data)
    }

    fn into_array(self) -> Result<IdxArray> {
        let dims = self.dims.clone();
        Ok(IdxArray { dims, data: self.body()? })
    }
}

/// An images file and its labels file whose headers agree; [`IdxSet::read`] reads both.
pub struct IdxSet {
    images: IdxStream<'static>,
    labels: IdxStream<'static>,
    pub images_path: std::path::PathBuf,
    pub labels_path: std::path::PathBuf,
}

/// Opens an images file (`[N, …]`, any number of trailing dimensions) and a labels file
/// (`[N]`) and checks their headers against each other before any values are read.
pub fn open_set(images: &Path, labels: &Path) -> Result<IdxSet> {
    let im = open(images)?;
    let lb = open(labels)?;
    if im.dims.len() < 2 {
        return Err(Error::format(images, format!("images have dimensions {:?}, expected [count, …]", im.dims)));
    }
    if lb.dims.len() != 1 {
        return Err(Error::format(labels, format!("labels have dimensions {:?}, expected [count]", lb.dims)));
    }
    let (n, width) = (im.dims[0], im.dims[1..].iter().product::<usize>());
    if lb.dims[0] != n {
        return Err(Error::format(labels, format!("{} labels, but {} has {n} images", lb.dims[0], images.display())));
    }
    if n == 0 || width == 0 {
        return Err(Error::format(images, format!("dimensions {:?}: no samples or no features", im.dims)));
    }
    Ok(IdxSet { images: im, labels: lb, images_path: images.to_path_buf(), labels_path: labels.to_path_buf() })
}

impl IdxSet {
    /// The shape of one sample (`[28, 28]` for MNIST).
    pub fn sample_dims(&self) -> &[usize] {
        &self.images.dims[1..]
    }

    /// Reads both files' values into a data set.
    pub fn read(self) -> Result<Dataset> {
        let (n, width) = (self.images.dims[0], self.images.dims[1..].iter().product::<usize>());
        let labels = self.labels.body()?;
        let shape = crate::model::Shape::from_dims(&self.images.dims[1..]);
        let pixels = self.images.body()?;
        Ok(Dataset {
            source: self.images_path,
            features: FeatureData::U8(pixels),
            labels: labels.iter().map(|&l| u32::from(l)).collect(),
            rows: n,
            width,
            shape,
            classes: 0,
        })
    }
}

/// Reads an images file (`[N, …]`, any number of trailing dimensions) and a labels file
/// (`[N]`) into a data set; the counts must agree.
pub fn read_set(images: &Path, labels: &Path) -> Result<Dataset> {
    open_set(images, labels)?.read()
}
