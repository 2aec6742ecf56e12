//! [`Calibration`]: the images pruning recovery fits on, checked once.
//!
//! Recovery ([`prune_with_recovery`](crate::prune_with_recovery)) re-estimates batch-norm
//! statistics and refits the layers that lost input channels on these images, so they must come
//! from the **training** split (never the validation images a search scores plans on, nor the
//! test images), normalised exactly as the network's inputs are.

use burn::prelude::*;
use coinfer_split::NetSpec;

use crate::SparsityError;
use crate::tensors::values;

/// Normalised training images `[N, C, H, W]` on the network's device, `N ≥ 1`, every value
/// finite. Build one with [`Calibration::new`]; its shape is checked against a network's input
/// when it is used.
///
/// ```
/// use burn::prelude::*;
/// use coinfer_sparsity::Calibration;
///
/// let images = Tensor::<4>::zeros([16, 1, 28, 28], &Device::flex());
/// let calibration = Calibration::new(images)?;
/// assert_eq!(calibration.len(), 16);
/// # Ok::<(), coinfer_sparsity::SparsityError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Calibration {
    images: Tensor<4>,
}

impl Calibration {
    /// Checks and wraps a batch of normalised training images.
    ///
    /// Fails with [`SparsityError::EmptyCalibration`] for a batch of zero images (or images of
    /// zero size) and [`SparsityError::NonFiniteCalibration`] naming the first image holding a
    /// NaN or infinity.
    pub fn new(images: Tensor<4>) -> Result<Calibration, SparsityError> {
        let [n, c, h, w] = images.dims();
        if n == 0 || c * h * w == 0 {
            return Err(SparsityError::EmptyCalibration {
                dims: [n, c, h, w],
            });
        }
        let per_image = c * h * w;
        if let Some(position) = values(images.clone())?
            .iter()
            .position(|v| !v.is_finite())
        {
            return Err(SparsityError::NonFiniteCalibration {
                image: position / per_image,
            });
        }
        Ok(Calibration { images })
    }

    /// The images, `[N, C, H, W]`.
    pub fn images(&self) -> &Tensor<4> {
        &self.images
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dims()[0]
    }

    /// Always `false`: [`Calibration::new`] rejects an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fails with [`SparsityError::CalibrationShape`] unless the images have the input shape of
    /// `spec`.
    pub(crate) fn check_for(&self, spec: &NetSpec) -> Result<(), SparsityError> {
        let [_, c, h, w] = self.images.dims();
        let expected = spec.input.dims();
        if [c, h, w] != expected {
            return Err(SparsityError::CalibrationShape {
                expected,
                got: [c, h, w],
            });
        }
        Ok(())
    }
}
