//! [`ImageDataset`]: labelled `u8` images in NCHW order, and the ways to cut it.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Labelled images with `u8` pixels, stored contiguously in NCHW order.
///
/// All images share one shape `[channels, height, width]`; every label is below
/// [`num_classes`](Self::num_classes). Cutting operations ([`subset`](Self::subset),
/// [`split`](Self::split), ...) copy the selected images into a new dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    channels: usize,
    height: usize,
    width: usize,
    num_classes: usize,
}

impl ImageDataset {
    /// Builds a dataset from NCHW pixels, one label per image, the image shape
    /// `[channels, height, width]` and the number of classes.
    ///
    /// Fails with [`DataError::InvalidDataset`] when the pixel count is not
    /// `labels.len() * channels * height * width` or a dimension is zero, and with
    /// [`DataError::LabelOutOfRange`] when a label is `>= num_classes`.
    pub fn new(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        image_shape: [usize; 3],
        num_classes: usize,
    ) -> Result<Self> {
        let [c, h, w] = image_shape;
        if c == 0 || h == 0 || w == 0 || num_classes == 0 {
            return Err(DataError::InvalidDataset(format!(
                "image shape {image_shape:?} and num_classes {num_classes} must be non-zero"
            )));
        }
        let expected = [labels.len(), c, h, w]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(pixels.len()) {
            return Err(DataError::InvalidDataset(format!(
                "{} pixels do not fit {} images of shape {image_shape:?}",
                pixels.len(),
                labels.len()
            )));
        }
        check_labels(&labels, num_classes, "in-memory data")?;
        Ok(Self::from_checked_parts(
            pixels,
            labels,
            image_shape,
            num_classes,
        ))
    }

    /// Builds a dataset whose sizes and labels the caller has already checked.
    pub(crate) fn from_checked_parts(
        pixels: Vec<u8>,
        labels: Vec<u8>,
        [channels, height, width]: [usize; 3],
        num_classes: usize,
    ) -> Self {
        debug_assert_eq!(pixels.len(), labels.len() * channels * height * width);
        Self {
            pixels,
            labels,
            channels,
            height,
            width,
            num_classes,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape of one image: `[channels, height, width]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// One label per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// All pixels, NCHW.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Number of images of each class, indexed by class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// The pixels of image `i`, CHW.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let size = self.image_size();
        &self.pixels[i * size..(i + 1) * size]
    }

    /// Pixels per image.
    pub(crate) fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// A new dataset holding the images at `indices`, in that order (repeats allowed).
    ///
    /// Fails with [`DataError::IndexOutOfRange`] for an index `>= len()`.
    pub fn subset(&self, indices: &[usize]) -> Result<ImageDataset> {
        self.check_indices(indices)?;
        Ok(self.gather(indices))
    }

    /// A subset with `per_class` images of every class, drawn at random (seeded) within each
    /// class; the result keeps the original order of the images.
    ///
    /// Fails with [`DataError::NotEnoughItems`] when a class has fewer than `per_class` images.
    pub fn class_balanced_subset(&self, per_class: usize, seed: u64) -> Result<ImageDataset> {
        if let Some((class, available)) = self
            .class_counts()
            .into_iter()
            .enumerate()
            .find(|&(_, n)| n < per_class)
        {
            return Err(DataError::NotEnoughItems {
                class,
                wanted: per_class,
                available,
            });
        }
        Ok(self.class_capped_subset(per_class, seed))
    }

    /// A subset with at most `per_class` images of every class (all of a rarer class), drawn
    /// at random (seeded) within each class; the result keeps the original order of the images.
    /// Unlike [`class_balanced_subset`](Self::class_balanced_subset) it never fails: small or
    /// lopsided datasets (a class with no image at all) give what they have.
    pub fn class_capped_subset(&self, per_class: usize, seed: u64) -> ImageDataset {
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.num_classes];
        for (i, &l) in self.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut chosen = Vec::with_capacity(per_class.saturating_mul(self.num_classes));
        for mut members in by_class {
            members.shuffle(&mut rng);
            chosen.extend_from_slice(&members[..per_class.min(members.len())]);
        }
        chosen.sort_unstable();
        self.gather(&chosen)
    }

    /// Splits into two disjoint datasets: a random (seeded) `fraction` of the images, rounded
    /// to the nearest whole image, and the rest. Each part keeps the original order.
    ///
    /// The same seed always gives the same split. Fails with
    /// [`DataError::InvalidParameter`] unless `0 <= fraction <= 1`.
    pub fn split(&self, fraction: f64, seed: u64) -> Result<(ImageDataset, ImageDataset)> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(DataError::invalid(
                "fraction",
                format!("{fraction} is not in [0, 1]"),
            ));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let first_len = (fraction * self.len() as f64).round() as usize;
        let (first, second) = order.split_at_mut(first_len.min(self.len()));
        first.sort_unstable();
        second.sort_unstable();
        Ok((self.gather(first), self.gather(second)))
    }

    /// The first `n` images (all of them when `n >= len()`).
    pub fn take(&self, n: usize) -> ImageDataset {
        let n = n.min(self.len());
        Self::from_checked_parts(
            self.pixels[..n * self.image_size()].to_vec(),
            self.labels[..n].to_vec(),
            self.image_shape(),
            self.num_classes,
        )
    }

    /// A 64-bit fingerprint (FNV-1a) of each image's label and pixels, in order. Equal images
    /// with equal labels share a fingerprint wherever they come from, so a model can record
    /// which images it was trained on and a later search can tell whether its validation images
    /// are among them.
    pub fn image_digests(&self) -> Vec<u64> {
        (0..self.len())
            .map(|i| {
                let mut hash = FNV_OFFSET;
                for &b in std::iter::once(&self.labels[i]).chain(self.image(i)) {
                    hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                }
                hash
            })
            .collect()
    }

    /// A 64-bit fingerprint (hex) of the whole dataset: shape, classes and every image's
    /// [digest](Self::image_digests), in order.
    pub fn digest(&self) -> String {
        let mut hash = FNV_OFFSET;
        let header = [self.channels, self.height, self.width, self.num_classes];
        let bytes = header
            .iter()
            .flat_map(|d| (*d as u64).to_le_bytes())
            .chain(self.image_digests().into_iter().flat_map(u64::to_le_bytes));
        for b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        format!("{hash:016x}")
    }

    /// Splits into `(chosen, rest)`: `n` images drawn at random (seeded) among those whose
    /// index `eligible` accepts, and every other image. Each part keeps the original order.
    ///
    /// Fails with [`DataError::InvalidParameter`] when fewer than `n` images are eligible.
    pub fn split_eligible(
        &self,
        n: usize,
        seed: u64,
        eligible: impl Fn(usize) -> bool,
    ) -> Result<(ImageDataset, ImageDataset)> {
        let mut candidates: Vec<usize> = (0..self.len()).filter(|&i| eligible(i)).collect();
        if candidates.len() < n {
            return Err(DataError::invalid(
                "n",
                format!(
                    "{n} images wanted but only {} are eligible",
                    candidates.len()
                ),
            ));
        }
        candidates.shuffle(&mut StdRng::seed_from_u64(seed));
        let mut chosen = candidates[..n].to_vec();
        chosen.sort_unstable();
        let mut taken = vec![false; self.len()];
        for &i in &chosen {
            taken[i] = true;
        }
        let rest: Vec<usize> = (0..self.len()).filter(|&i| !taken[i]).collect();
        Ok((self.gather(&chosen), self.gather(&rest)))
    }

    pub(crate) fn check_indices(&self, indices: &[usize]) -> Result<()> {
        match indices.iter().find(|&&i| i >= self.len()) {
            Some(&index) => Err(DataError::IndexOutOfRange {
                index,
                len: self.len(),
            }),
            None => Ok(()),
        }
    }

    /// Copies the images at `indices`, which the caller has checked.
    fn gather(&self, indices: &[usize]) -> ImageDataset {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_size());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Self::from_checked_parts(pixels, labels, self.image_shape(), self.num_classes)
    }
}

/// The official training and test sets of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainTest {
    /// Training set.
    pub train: ImageDataset,
    /// Test set.
    pub test: ImageDataset,
}

/// Fails with [`DataError::LabelOutOfRange`] on the first label `>= num_classes`.
pub(crate) fn check_labels(labels: &[u8], num_classes: usize, origin: &str) -> Result<()> {
    match labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= num_classes)
    {
        Some((index, &label)) => Err(DataError::LabelOutOfRange {
            origin: origin.to_owned(),
            index,
            label,
            num_classes,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 images of 1x2x2; image i has all pixels equal to i and label i % 3.
    fn toy() -> ImageDataset {
        let pixels = (0..10u8).flat_map(|i| [i; 4]).collect();
        let labels = (0..10u8).map(|i| i % 3).collect();
        ImageDataset::new(pixels, labels, [1, 2, 2], 3).unwrap()
    }

    #[test]
    fn new_rejects_bad_sizes_and_labels() {
        assert!(matches!(
            ImageDataset::new(vec![0; 7], vec![0, 0], [1, 2, 2], 3),
            Err(DataError::InvalidDataset(_))
        ));
        let err = ImageDataset::new(vec![0; 8], vec![0, 3], [1, 2, 2], 3).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn subset_copies_in_order_and_rejects_bad_index() {
        let ds = toy();
        let sub = ds.subset(&[7, 2, 7]).unwrap();
        assert_eq!(sub.labels(), &[1, 2, 1]);
        assert_eq!(sub.image(1), &[2; 4]);
        assert!(matches!(
            ds.subset(&[1, 10]),
            Err(DataError::IndexOutOfRange { index: 10, len: 10 })
        ));
    }

    #[test]
    fn class_balanced_subset_has_per_class_items() {
        let ds = toy(); // class counts 4, 3, 3
        let sub = ds.class_balanced_subset(3, 5).unwrap();
        assert_eq!(sub.class_counts(), vec![3, 3, 3]);
        assert!(matches!(
            ds.class_balanced_subset(4, 5),
            Err(DataError::NotEnoughItems {
                class: 1,
                wanted: 4,
                available: 3
            })
        ));
    }

    #[test]
    fn class_capped_subset_takes_what_a_rare_class_has() {
        let ds = toy(); // class counts 4, 3, 3
        assert_eq!(ds.class_capped_subset(4, 5).class_counts(), vec![4, 3, 3]);
        assert_eq!(ds.class_capped_subset(2, 5).class_counts(), vec![2, 2, 2]);
        assert!(ds.class_capped_subset(0, 5).is_empty());
        // The same draw as the balanced subset where that one succeeds.
        assert_eq!(
            ds.class_capped_subset(3, 9).labels(),
            ds.class_balanced_subset(3, 9).unwrap().labels()
        );
    }

    #[test]
    fn split_partitions_the_images() {
        let ds = toy();
        let (a, b) = ds.split(0.3, 1).unwrap();
        assert_eq!((a.len(), b.len()), (3, 7));
        let mut ids: Vec<u8> = a
            .pixels()
            .iter()
            .chain(b.pixels())
            .step_by(4)
            .copied()
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..10).collect::<Vec<u8>>());
        assert!(ds.split(1.5, 1).is_err());
        assert!(ds.split(f64::NAN, 1).is_err());
    }

    #[test]
    fn take_clamps() {
        let ds = toy();
        assert_eq!(ds.take(4).labels(), &[0, 1, 2, 0]);
        assert_eq!(ds.take(100).len(), 10);
    }
}
