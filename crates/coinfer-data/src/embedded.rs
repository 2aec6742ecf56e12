//! Data compiled into the crate, so examples and tests run without any download.
//!
//! `assets/fashion-mnist-subset/` holds a class-balanced subset of the real Fashion-MNIST:
//! the first 600 training images of each class (6,000) and the first 100 test images of each
//! class (1,000), in file order of the official sets, re-encoded as gzipped IDX. Its
//! `README.md` documents how it was made (`examples/make_subset.rs`), `COPYRIGHT` the licence
//! (MIT, Zalando SE).

use std::path::Path;

use crate::dataset::TrainTest;
use crate::error::Result;
use crate::fashion_mnist;
use crate::idx;

macro_rules! subset_file {
    ($name:literal) => {
        (
            concat!("embedded:fashion-mnist-subset/", $name),
            include_bytes!(concat!("../assets/fashion-mnist-subset/", $name)).as_slice(),
        )
    };
}

const TRAIN_IMAGES: (&str, &[u8]) = subset_file!("train-images-idx3-ubyte.gz");
const TRAIN_LABELS: (&str, &[u8]) = subset_file!("train-labels-idx1-ubyte.gz");
const TEST_IMAGES: (&str, &[u8]) = subset_file!("t10k-images-idx3-ubyte.gz");
const TEST_LABELS: (&str, &[u8]) = subset_file!("t10k-labels-idx1-ubyte.gz");

/// Images per class in the embedded training subset.
pub const TRAIN_PER_CLASS: usize = 600;
/// Images per class in the embedded test subset.
pub const TEST_PER_CLASS: usize = 100;

/// The embedded Fashion-MNIST subset: 6,000 training images (600 per class) and 1,000 test
/// images (100 per class), 1x28x28, labels 0..10 (see [`fashion_mnist::CLASS_NAMES`]).
///
/// Decodes the compressed assets on every call (a few tens of milliseconds); keep the result
/// rather than calling it in a loop. Errors name the asset with an `embedded:` pseudo path.
pub fn fashion_mnist_subset() -> Result<TrainTest> {
    Ok(TrainTest {
        train: decode(TRAIN_IMAGES, TRAIN_LABELS)?,
        test: decode(TEST_IMAGES, TEST_LABELS)?,
    })
}

fn decode(
    (images_name, images_bytes): (&str, &[u8]),
    (labels_name, labels_bytes): (&str, &[u8]),
) -> Result<crate::ImageDataset> {
    let (images_path, labels_path) = (Path::new(images_name), Path::new(labels_name));
    let images = idx::parse_images(images_bytes, images_path)?;
    let labels = idx::parse_labels(labels_bytes, labels_path)?;
    fashion_mnist::from_parts(images, labels, images_path, labels_path)
}
