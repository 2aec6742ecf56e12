//! Fashion-MNIST (Zalando): 28x28 grey images of 10 kinds of clothing, in gzipped IDX files.

use std::path::{Path, PathBuf};

use crate::dataset::{ImageDataset, TrainTest};
use crate::error::{DataError, Result};
use crate::idx;

/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Image side in pixels.
pub const SIDE: usize = 28;
/// Class names, indexed by label.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
/// Standard file name of the training images.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
/// Standard file name of the training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
/// Standard file name of the test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
/// Standard file name of the test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

/// Environment variable naming a Fashion-MNIST directory; see [`default_dir`].
pub const DIR_ENV_VAR: &str = "COINFER_FASHION_MNIST";

/// Loads the training and test sets from `dir`, which holds the four standard files
/// ([`TRAIN_IMAGES`], [`TRAIN_LABELS`], [`TEST_IMAGES`], [`TEST_LABELS`]).
///
/// Fails when a file is missing or malformed, when its images are not 28x28, or when
/// images and labels disagree; the error names the file.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<TrainTest> {
    let dir = dir.as_ref();
    Ok(TrainTest {
        train: load_pair(&dir.join(TRAIN_IMAGES), &dir.join(TRAIN_LABELS))?,
        test: load_pair(&dir.join(TEST_IMAGES), &dir.join(TEST_LABELS))?,
    })
}

/// The first existing directory among: the one named by the environment variable
/// `COINFER_FASHION_MNIST`, `../shared/data/fashion-mnist` (relative to the working
/// directory), and `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`).
///
/// Fails with [`DataError::DataDirNotFound`] listing the candidates when none exists.
pub fn default_dir() -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os(DIR_ENV_VAR)
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("../shared/data/fashion-mnist"),
            PathBuf::from("/usr/share/datasets/fashion-mnist"),
        ])
        .collect();
    match candidates.iter().find(|p| p.is_dir()) {
        Some(dir) => Ok(dir.clone()),
        None => Err(DataError::DataDirNotFound {
            dataset: "Fashion-MNIST",
            candidates,
        }),
    }
}

fn load_pair(images_path: &Path, labels_path: &Path) -> Result<ImageDataset> {
    let images = idx::read_images(images_path)?;
    let labels = idx::read_labels(labels_path)?;
    from_parts(images, labels, images_path, labels_path)
}

/// Checks the 28x28 shape, then joins images and labels.
pub(crate) fn from_parts(
    images: idx::IdxImages,
    labels: Vec<u8>,
    images_path: &Path,
    labels_path: &Path,
) -> Result<ImageDataset> {
    if (images.rows, images.cols) != (SIDE, SIDE) {
        return Err(DataError::WrongDims {
            path: images_path.into(),
            expected: format!("{SIDE}x{SIDE} images"),
            got: format!("{}x{} images", images.rows, images.cols),
        });
    }
    idx::dataset_from_parts(images, labels, images_path, labels_path, NUM_CLASSES)
}
