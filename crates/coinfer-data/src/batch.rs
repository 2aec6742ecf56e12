//! Turning images into normalised burn tensors: one batch, or an epoch of batches.

use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};
use crate::normalization::Normalization;

impl ImageDataset {
    /// The images at `indices` as a float tensor `[B, C, H, W]` with pixels `p / 255`
    /// normalised by `norm`, and their labels as an `Int` tensor `[B]`.
    ///
    /// Fails when `indices` is empty or holds an index `>= len()`, or when `norm` does not
    /// have one positive std per channel.
    pub fn batch(
        &self,
        indices: &[usize],
        norm: &Normalization,
        device: &Device,
    ) -> Result<(Tensor<4>, Tensor<1, Int>)> {
        if indices.is_empty() {
            return Err(DataError::invalid(
                "indices",
                "a batch needs at least one image",
            ));
        }
        self.check_indices(indices)?;
        norm.check(self.image_shape()[0])?;
        Ok(self.batch_unchecked(indices, &norm.lookup_tables(), device))
    }

    /// Builds a batch from checked indices and per-channel lookup tables.
    fn batch_unchecked(
        &self,
        indices: &[usize],
        tables: &[[f32; 256]],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let [c, h, w] = self.image_shape();
        let plane = h * w;
        let mut values = Vec::with_capacity(indices.len() * c * plane);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            for (table, channel) in tables.iter().zip(self.image(i).chunks_exact(plane)) {
                values.extend(channel.iter().map(|&p| table[p as usize]));
            }
            labels.push(i64::from(self.labels()[i]));
        }
        let images =
            Tensor::<4>::from_data(TensorData::new(values, [indices.len(), c, h, w]), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device);
        (images, labels)
    }
}

/// An epoch of batches over an [`ImageDataset`], in file order or shuffled.
///
/// Yields `(images [B, C, H, W], labels [B])` as [`ImageDataset::batch`] does. The last batch
/// is smaller when the batch size does not divide the dataset, unless
/// [`drop_last`](Self::drop_last) is set.
///
/// ```
/// # use coinfer_data::{Batches, Normalization, embedded};
/// # use burn::prelude::Device;
/// let data = embedded::fashion_mnist_subset()?.test;
/// let device = Device::flex();
/// let norm = Normalization::fashion_mnist();
/// for epoch in 0..2 {
///     let batches = Batches::new(&data, 256, &norm, &device)?.shuffle(42, epoch).drop_last(true);
///     assert_eq!(batches.len(), 3);
///     for (images, labels) in batches {
///         assert_eq!(images.dims(), [256, 1, 28, 28]);
///         assert_eq!(labels.dims(), [256]);
///     }
/// }
/// # Ok::<(), coinfer_data::DataError>(())
/// ```
#[derive(Debug)]
pub struct Batches<'a> {
    dataset: &'a ImageDataset,
    tables: Vec<[f32; 256]>,
    device: Device,
    order: Vec<usize>,
    batch_size: usize,
    drop_last: bool,
    next: usize,
}

impl<'a> Batches<'a> {
    /// Batches of `batch_size` images of `dataset` in file order, normalised by `norm`, on
    /// `device`.
    ///
    /// Fails when `batch_size` is zero or `norm` does not fit the dataset's channels.
    pub fn new(
        dataset: &'a ImageDataset,
        batch_size: usize,
        norm: &Normalization,
        device: &Device,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(DataError::invalid("batch_size", "must be at least 1"));
        }
        norm.check(dataset.image_shape()[0])?;
        Ok(Self {
            dataset,
            tables: norm.lookup_tables(),
            device: device.clone(),
            order: (0..dataset.len()).collect(),
            batch_size,
            drop_last: false,
            next: 0,
        })
    }

    /// Visits the images in a random order drawn from `seed + epoch`: the same pair always
    /// gives the same order, and each epoch of one run gets a different one.
    pub fn shuffle(mut self, seed: u64, epoch: u64) -> Self {
        self.order = (0..self.dataset.len()).collect();
        self.order
            .shuffle(&mut StdRng::seed_from_u64(seed.wrapping_add(epoch)));
        self.next = 0;
        self
    }

    /// Whether to skip a last batch smaller than the batch size.
    pub fn drop_last(mut self, drop_last: bool) -> Self {
        self.drop_last = drop_last;
        self
    }

    /// The order in which the images are visited, as dataset indices.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    fn remaining(&self) -> usize {
        let left = self.order.len() - self.next;
        if self.drop_last {
            left / self.batch_size
        } else {
            left.div_ceil(self.batch_size)
        }
    }
}

impl Iterator for Batches<'_> {
    type Item = (Tensor<4>, Tensor<1, Int>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining() == 0 {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let indices = &self.order[self.next..end];
        self.next = end;
        Some(
            self.dataset
                .batch_unchecked(indices, &self.tables, &self.device),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}
