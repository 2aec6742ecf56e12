//! The one error type of this crate.

use std::path::PathBuf;

/// Result alias used throughout `coinfer-data`.
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong while reading, checking or batching image data.
///
/// Variants about files carry the file's path (embedded assets use a pseudo path starting with
/// `embedded:`), so a message always names the culprit.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{}: I/O error: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The file starts with the gzip magic `1f 8b` but does not decompress.
    #[error("{}: corrupt gzip stream: {source}", path.display())]
    CorruptGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        source: std::io::Error,
    },

    /// The (decompressed) content is shorter than its header or format requires.
    #[error("{}: truncated {what}: expected {expected} bytes, got {got}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part is short (`"IDX header"`, `"IDX image data"`, ...).
        what: &'static str,
        /// Bytes required.
        expected: u64,
        /// Bytes present.
        got: u64,
    },

    /// The content is longer than its header announces.
    #[error("{}: {extra} unexpected trailing bytes after {expected} bytes of IDX data", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header announces (header included).
        expected: u64,
        /// Bytes beyond that.
        extra: u64,
    },

    /// The IDX magic number is not the one expected for this kind of file.
    #[error("{}: wrong IDX magic: expected {expected:#010x}, got {got:#010x}{hint}", path.display())]
    WrongMagic {
        /// The file.
        path: PathBuf,
        /// Magic required (`0x00000803` images, `0x00000801` labels).
        expected: u32,
        /// Magic found.
        got: u32,
        /// Extra hint, e.g. that the file was not gzip-compressed (may be empty).
        hint: &'static str,
    },

    /// Image dimensions are unusable or not the ones required.
    #[error("{}: wrong dimensions: expected {expected}, got {got}", path.display())]
    WrongDims {
        /// The file.
        path: PathBuf,
        /// What was required.
        expected: String,
        /// What was found.
        got: String,
    },

    /// An image file and its label file disagree on the number of items.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },

    /// A label is not below the number of classes.
    #[error("{origin}: label {label} of item {index} is out of range (num classes {num_classes})")]
    LabelOutOfRange {
        /// The file path, or `"in-memory data"` for [`ImageDataset::new`](crate::ImageDataset::new).
        origin: String,
        /// Index of the offending item.
        index: usize,
        /// The label found.
        label: u8,
        /// Number of classes.
        num_classes: usize,
    },

    /// A CIFAR-10 binary file whose size is not a whole number of records.
    #[error(
        "{}: size {size} bytes is not a multiple of the CIFAR-10 record size {record_size}",
        path.display()
    )]
    RecordSize {
        /// The file.
        path: PathBuf,
        /// File size in bytes.
        size: u64,
        /// Bytes per record (3073).
        record_size: usize,
    },

    /// In-memory pixels, labels and shape do not fit together.
    #[error("invalid dataset: {0}")]
    InvalidDataset(String),

    /// An item index is not below the dataset length.
    #[error("index {index} is out of range for a dataset of {len} items")]
    IndexOutOfRange {
        /// The index.
        index: usize,
        /// Dataset length.
        len: usize,
    },

    /// A class has fewer items than a class-balanced subset asks for.
    #[error("class {class} has {available} items, {wanted} requested")]
    NotEnoughItems {
        /// The class.
        class: usize,
        /// Items asked for.
        wanted: usize,
        /// Items present.
        available: usize,
    },

    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },

    /// An image file of a folder that is refused: not PNG or JPEG, or it does not decode.
    #[error("{}: refused image: {reason}", path.display())]
    BadImage {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A class folder of an image folder without any image.
    #[error("{}: empty class folder (no image inside)", dir.display())]
    EmptyClass {
        /// The class folder.
        dir: PathBuf,
    },

    /// A class of an image folder that one of its splits lacks (or would lack: too few images
    /// to hold some out).
    #[error("{}: class `{class}` has no image in the {split} split", root.display())]
    ClassMissing {
        /// The image folder.
        root: PathBuf,
        /// The class.
        class: String,
        /// The split without it (`train` or `test`).
        split: &'static str,
    },

    /// An image folder whose layout cannot be read.
    #[error("{}: {reason}", root.display())]
    FolderLayout {
        /// The folder.
        root: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// None of the candidate directories for a data set exists.
    #[error("no {dataset} directory found; tried: {}", list_paths(candidates))]
    DataDirNotFound {
        /// Which data set.
        dataset: &'static str,
        /// The directories tried, in order.
        candidates: Vec<PathBuf>,
    },
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}
