//! A tiny Fashion-MNIST directory (IDX files) written at test time from the embedded subset,
//! shared by the CLI tests that run a search.

use std::path::{Path, PathBuf};

use coinfer_automl::data::idx::{self, IdxImages};
use coinfer_automl::data::{ImageDataset, embedded, fashion_mnist};

/// Writes `data` as gzipped IDX images and labels.
fn write_idx(data: &ImageDataset, images: &Path, labels: &Path) {
    let [_, rows, cols] = data.image_shape();
    let idx_images = IdxImages {
        pixels: data.pixels().to_vec(),
        count: data.len(),
        rows,
        cols,
    };
    idx::write_gz_images(images, &idx_images).unwrap();
    idx::write_gz_labels(labels, data.labels()).unwrap();
}

/// A Fashion-MNIST directory of 12 training and 4 test images per class.
pub fn tiny_data(dir: &Path) -> PathBuf {
    let full = embedded::fashion_mnist_subset().unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let train = full.train.class_balanced_subset(12, 1).unwrap();
    let test = full.test.class_balanced_subset(4, 1).unwrap();
    write_idx(
        &train,
        &data.join(fashion_mnist::TRAIN_IMAGES),
        &data.join(fashion_mnist::TRAIN_LABELS),
    );
    write_idx(
        &test,
        &data.join(fashion_mnist::TEST_IMAGES),
        &data.join(fashion_mnist::TEST_LABELS),
    );
    data
}
