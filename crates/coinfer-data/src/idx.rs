//! IDX files, the format of MNIST and Fashion-MNIST: a big-endian `u32` magic, one big-endian
//! `u32` per dimension, then the `u8` data. Files may be gzip-compressed (detected by the gzip
//! magic `1f 8b`) or plain.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::dataset::{ImageDataset, check_labels};
use crate::error::{DataError, Result};

/// Magic of an IDX file of `u8` images with three dimensions (count, rows, columns).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of `u8` labels with one dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The content of an IDX image file: `count` grey images of `rows x cols` pixels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// `count * rows * cols` pixels, image after image, each row-major.
    pub pixels: Vec<u8>,
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
}

/// Reads an IDX image file (magic `0x00000803`), gzip-compressed or plain.
pub fn read_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    parse_images(&read_file(path)?, path)
}

/// Reads an IDX label file (magic `0x00000801`), gzip-compressed or plain.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_labels(&read_file(path)?, path)
}

/// Parses the bytes of an IDX image file; `path` only names the source in errors.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let (dims, body) = parse_idx(bytes, path, IMAGES_MAGIC, 3)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(DataError::WrongDims {
            path: path.into(),
            expected: "non-zero rows and columns".into(),
            got: format!("{count}x{rows}x{cols}"),
        });
    }
    Ok(IdxImages {
        pixels: body,
        count,
        rows,
        cols,
    })
}

/// Parses the bytes of an IDX label file; `path` only names the source in errors.
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    parse_idx(bytes, path, LABELS_MAGIC, 1).map(|(_, body)| body)
}

/// Reads an image file and its label file into a one-channel [`ImageDataset`], checking that
/// the counts agree and every label is below `num_classes`.
pub fn read_dataset(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    num_classes: usize,
) -> Result<ImageDataset> {
    let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    dataset_from_parts(images, labels, images_path, labels_path, num_classes)
}

/// Joins parsed images and labels into a dataset, naming both files in errors.
pub(crate) fn dataset_from_parts(
    images: IdxImages,
    labels: Vec<u8>,
    images_path: &Path,
    labels_path: &Path,
    num_classes: usize,
) -> Result<ImageDataset> {
    if images.count != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.into(),
            labels_path: labels_path.into(),
            images: images.count,
            labels: labels.len(),
        });
    }
    check_labels(&labels, num_classes, &labels_path.display().to_string())?;
    Ok(ImageDataset::from_checked_parts(
        images.pixels,
        labels,
        [1, images.rows, images.cols],
        num_classes,
    ))
}

/// Writes images as a gzip-compressed IDX file (magic `0x00000803`).
///
/// Fails with [`DataError::WrongDims`] when `pixels` does not hold `count * rows * cols` bytes
/// or a dimension does not fit in a `u32`.
pub fn write_gz_images(path: impl AsRef<Path>, images: &IdxImages) -> Result<()> {
    let path = path.as_ref();
    let expected = images
        .count
        .checked_mul(images.rows)
        .and_then(|n| n.checked_mul(images.cols));
    let dims = [images.count, images.rows, images.cols];
    let dims_u32: Option<Vec<u32>> = dims.iter().map(|&d| u32::try_from(d).ok()).collect();
    match (expected, dims_u32) {
        (Some(n), Some(dims_u32)) if n == images.pixels.len() => {
            write_gz_idx(path, IMAGES_MAGIC, &dims_u32, &images.pixels)
        }
        _ => Err(DataError::WrongDims {
            path: path.into(),
            expected: format!(
                "{} pixels for {}x{}x{} (each dimension below 2^32)",
                images.pixels.len(),
                images.count,
                images.rows,
                images.cols
            ),
            got: format!("{} pixels", images.pixels.len()),
        }),
    }
}

/// Writes labels as a gzip-compressed IDX file (magic `0x00000801`).
pub fn write_gz_labels(path: impl AsRef<Path>, labels: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let count = u32::try_from(labels.len()).map_err(|_| DataError::WrongDims {
        path: path.into(),
        expected: "fewer than 2^32 labels".into(),
        got: labels.len().to_string(),
    })?;
    write_gz_idx(path, LABELS_MAGIC, &[count], labels)
}

fn write_gz_idx(path: &Path, magic: u32, dims: &[u32], body: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    // GzEncoder writes mtime 0, so the same content always gives the same bytes.
    let mut encoder = GzEncoder::new(std::io::BufWriter::new(file), Compression::best());
    let write_all = |encoder: &mut GzEncoder<_>| -> std::io::Result<()> {
        encoder.write_all(&magic.to_be_bytes())?;
        for d in dims {
            encoder.write_all(&d.to_be_bytes())?;
        }
        encoder.write_all(body)
    };
    write_all(&mut encoder).map_err(|e| DataError::io(path, e))?;
    encoder
        .finish()
        .and_then(|mut w| w.flush())
        .map_err(|e| DataError::io(path, e))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

fn decompress<'a>(bytes: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|source| DataError::CorruptGzip {
            path: path.into(),
            source,
        })?;
    Ok(Cow::Owned(out))
}

/// Checks magic and size of a (possibly gzipped) IDX file; returns its dimensions and data.
fn parse_idx(raw: &[u8], path: &Path, magic: u32, ndims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let bytes = decompress(raw, path)?;
    let header_len = 4 * (1 + ndims);
    let got = bytes.len() as u64;
    let be_u32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);

    if bytes.len() < 4 {
        return Err(truncated(path, "IDX header", header_len as u64, got));
    }
    let found = be_u32(0);
    if found != magic {
        return Err(DataError::WrongMagic {
            path: path.into(),
            expected: magic,
            got: found,
            hint: if is_gzip(raw) {
                ""
            } else {
                " (the file is not gzip-compressed)"
            },
        });
    }
    if bytes.len() < header_len {
        return Err(truncated(path, "IDX header", header_len as u64, got));
    }
    let dims: Vec<usize> = (0..ndims).map(|i| be_u32(4 + 4 * i) as usize).collect();
    // u64 arithmetic: three u32 dimensions can overflow usize on 32-bit targets, and a
    // corrupt header must not make us allocate before the size check.
    let body_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| DataError::WrongDims {
            path: path.into(),
            expected: "a data size that fits in 64 bits".into(),
            got: format!("{dims:?}"),
        })?;
    let expected = header_len as u64 + body_len;
    if got < expected {
        return Err(truncated(path, "IDX data", expected, got));
    }
    if got > expected {
        return Err(DataError::TrailingBytes {
            path: path.into(),
            expected,
            extra: got - expected,
        });
    }
    let body = match bytes {
        Cow::Owned(mut v) => {
            v.drain(..header_len);
            v
        }
        Cow::Borrowed(b) => b[header_len..].to_vec(),
    };
    Ok((dims, body))
}

fn truncated(path: &Path, what: &'static str, expected: u64, got: u64) -> DataError {
    DataError::Truncated {
        path: path.into(),
        what,
        expected,
        got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn plain_images_parse() {
        let mut bytes = header(IMAGES_MAGIC, &[2, 2, 3]);
        bytes.extend(0u8..12);
        let images = parse_images(&bytes, Path::new("x")).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (2, 2, 3));
        assert_eq!(images.pixels, (0u8..12).collect::<Vec<_>>());
    }

    #[test]
    fn short_header_is_truncated() {
        let bytes = header(LABELS_MAGIC, &[])[..3].to_vec();
        let err = parse_labels(&bytes, Path::new("short.idx")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated {
                    expected: 8,
                    got: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = header(LABELS_MAGIC, &[2]);
        bytes.extend([1, 2, 3]);
        let err = parse_labels(&bytes, Path::new("long.idx")).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TrailingBytes {
                    expected: 10,
                    extra: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_dims_do_not_allocate() {
        let bytes = header(IMAGES_MAGIC, &[u32::MAX, u32::MAX, u32::MAX]);
        let err = parse_images(&bytes, Path::new("huge.idx")).unwrap_err();
        assert!(matches!(err, DataError::WrongDims { .. }), "{err}");
    }

    #[test]
    fn zero_sized_images_are_rejected() {
        let bytes = header(IMAGES_MAGIC, &[0, 0, 28]);
        let err = parse_images(&bytes, Path::new("zero.idx")).unwrap_err();
        assert!(matches!(err, DataError::WrongDims { .. }), "{err}");
    }
}
