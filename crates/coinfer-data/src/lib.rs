//! Real image data for training and evaluating the classifiers that coinfer splits.
//!
//! `coinfer-data` reads MNIST / Fashion-MNIST IDX files, CIFAR-10 binary batches and image
//! folders (PNG / JPEG, one sub-folder per class) into an
//! [`ImageDataset`] of `u8` NCHW images, cuts it (subsets, class-balanced subsets, seeded
//! splits) and turns it into normalised burn tensors, one [`batch`](ImageDataset::batch) at a
//! time or an epoch of [`Batches`]. A class-balanced Fashion-MNIST subset (6,000 train +
//! 1,000 test real images) is compiled in, so nothing needs a download.
//!
//! ```
//! use burn::prelude::*;
//! use coinfer_data::{Normalization, embedded};
//!
//! let data = embedded::fashion_mnist_subset()?;
//! assert_eq!((data.train.len(), data.test.len()), (6_000, 1_000));
//!
//! let norm = Normalization::fit(&data.train);
//! let device = Device::flex();
//! let (images, labels) = data.test.batch(&[0, 1, 2, 3], &norm, &device)?;
//! assert_eq!(images.dims(), [4, 1, 28, 28]);
//! assert_eq!(labels.dims(), [4]);
//! # Ok::<(), coinfer_data::DataError>(())
//! ```
//!
//! Modules: [`idx`] (IDX reader and writer), [`cifar10`], [`fashion_mnist`] (directory
//! loaders), [`folder`] (image folders: resized, centre-cropped, class names kept),
//! [`embedded`] (the compiled-in subset). [`Budget`] says how much of a training set a
//! training run sees: whole passes (`epochs:N`) or images (`images:N`, whatever the set's size).
//!
//! Features: `flex` (default, burn's CPU backend), `ndarray`, `wgpu` select the burn
//! backends available to [`Device`](burn::prelude::Device).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod batch;
mod budget;
pub mod cifar10;
mod dataset;
pub mod embedded;
mod error;
pub mod fashion_mnist;
pub mod folder;
pub mod idx;
mod normalization;

pub use batch::Batches;
pub use budget::Budget;
pub use dataset::{ImageDataset, TrainTest};
pub use error::{DataError, Result};
pub use normalization::Normalization;
