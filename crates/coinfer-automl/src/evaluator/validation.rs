//! [`ValidationSet`]: the images every plan is scored on, batched once.

use burn::prelude::*;
use coinfer_data::{ImageDataset, Normalization};

use crate::AutomlError;

/// A fixed, pre-batched validation subset (normalised tensors, built once).
pub struct ValidationSet {
    pub(super) batches: Vec<(Tensor<4>, Tensor<1, Int>)>,
    len: usize,
}

impl ValidationSet {
    /// Batches `data` (all of it) with `norm` on `device`, `batch_size` images per tensor.
    pub fn new(
        data: &ImageDataset,
        norm: &Normalization,
        batch_size: usize,
        device: &Device,
    ) -> Result<ValidationSet, AutomlError> {
        if data.is_empty() || batch_size == 0 {
            return Err(AutomlError::InvalidConfig {
                field: "validation",
                reason: "the validation subset and its batch size must be non-empty".into(),
            });
        }
        let indices: Vec<usize> = (0..data.len()).collect();
        let batches = indices
            .chunks(batch_size)
            .map(|chunk| data.batch(chunk, norm, device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ValidationSet {
            batches,
            len: data.len(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no images (never true for a constructed set).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
