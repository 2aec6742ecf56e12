//! Image folders as users keep them (torchvision's `ImageFolder` layout): one sub-folder per
//! class, PNG or JPEG files inside, at any size, grey or colour.
//!
//! ```text
//! root/train/<class>/*.png|jpg    root/<class>/*.png|jpg
//! root/test/<class>/*.png|jpg     (a seeded, per-class split holds out the test part)
//! ```
//!
//! Every image is converted to the requested channels (grey or RGB), resized so that it covers
//! the requested height × width (bilinear, aspect ratio kept) and centre-cropped to it; an image
//! already at that size is taken as it is. Class names are the sorted sub-folder names and
//! label `i` is `classes[i]`. The normalisation is fitted on the training images.
//!
//! ```no_run
//! use coinfer_data::folder::{self, FolderOptions};
//!
//! let folder = folder::load("my-images", &FolderOptions::new([3, 32, 32]))?;
//! println!("{} classes: {:?}", folder.classes.len(), folder.classes);
//! println!("{} training images", folder.data.train.len());
//! # Ok::<(), coinfer_data::DataError>(())
//! ```
//!
//! Refused inputs are [`DataError`]s naming the culprit: a file that is not PNG or JPEG or
//! does not decode ([`DataError::BadImage`]), an empty class ([`DataError::EmptyClass`]), a
//! class present in only one split ([`DataError::ClassMissing`]), a layout without classes or
//! with more than 256 ([`DataError::FolderLayout`]).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageReader};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::dataset::{ImageDataset, TrainTest};
use crate::error::{DataError, Result};
use crate::normalization::Normalization;

/// Name of the training sub-folder of the split layout.
pub const TRAIN_DIR: &str = "train";
/// Name of the test sub-folder of the split layout.
pub const TEST_DIR: &str = "test";
/// File extensions read (case-insensitive).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
/// Most classes a folder may hold (labels are bytes).
pub const MAX_CLASSES: usize = 256;
/// Default share of the images held out as the test part of a folder without `train/` and
/// `test/`.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// How to read an image folder.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderOptions {
    /// `[channels, height, width]` every image is brought to: 1 channel (grey) or 3 (RGB).
    pub shape: [usize; 3],
    /// Share of each class held out as the test part when the folder has no `train/` and
    /// `test/` sub-folders; in `(0, 1)`.
    pub test_fraction: f64,
    /// Seed of that split.
    pub seed: u64,
}

impl FolderOptions {
    /// Images brought to `shape`, [`DEFAULT_TEST_FRACTION`], seed 1.
    pub fn new(shape: [usize; 3]) -> FolderOptions {
        FolderOptions {
            shape,
            test_fraction: DEFAULT_TEST_FRACTION,
            seed: 1,
        }
    }

    fn check(&self) -> Result<()> {
        let [c, h, w] = self.shape;
        if c != 1 && c != 3 {
            return Err(DataError::invalid(
                "shape",
                format!("{c} channels: images are read as grey (1) or RGB (3)"),
            ));
        }
        if h == 0 || w == 0 || h > u32::MAX as usize || w > u32::MAX as usize {
            return Err(DataError::invalid(
                "shape",
                format!("{h}×{w} is not an image size"),
            ));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(DataError::invalid(
                "test_fraction",
                format!("{} is not in (0, 1)", self.test_fraction),
            ));
        }
        Ok(())
    }
}

/// Which layout a folder had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderLayout {
    /// `train/` and `test/` sub-folders, each with the class folders.
    TrainTest,
    /// Class folders at the root, split per class with the options' seed and fraction.
    Pooled,
}

/// An image folder read into memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// The images, labelled by index into [`classes`](Self::classes).
    pub data: TrainTest,
    /// Class names (the sub-folder names, sorted); label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Per-channel mean and standard deviation of the training images.
    pub normalization: Normalization,
    /// The layout found.
    pub layout: FolderLayout,
}

/// Reads the image folder at `root` (see the [module](self) documentation for the layouts).
pub fn load(root: impl AsRef<Path>, options: &FolderOptions) -> Result<ImageFolder> {
    let root = root.as_ref();
    options.check()?;
    let (train_dir, test_dir) = (root.join(TRAIN_DIR), root.join(TEST_DIR));
    let (layout, train, test, classes) = if train_dir.is_dir() || test_dir.is_dir() {
        let train = list_classes(&train_dir)?;
        let test = list_classes(&test_dir)?;
        let classes = same_classes(root, &train, &test)?;
        (
            FolderLayout::TrainTest,
            flatten(train),
            flatten(test),
            classes,
        )
    } else {
        let pooled = list_classes(root)?;
        let classes: Vec<String> = pooled.iter().map(|(name, _)| name.clone()).collect();
        let (train, test) = split_per_class(root, pooled, options)?;
        (FolderLayout::Pooled, train, test, classes)
    };
    let train = decode_all(&train, classes.len(), options.shape)?;
    let test = decode_all(&test, classes.len(), options.shape)?;
    let normalization = Normalization::fit(&train);
    Ok(ImageFolder {
        data: TrainTest { train, test },
        classes,
        normalization,
        layout,
    })
}

/// Reads one image file into `shape`'s channels and size (CHW `u8`): converted to grey or RGB,
/// resized to cover the size and centre-cropped; an image already at the size is unchanged.
pub fn read_image(path: impl AsRef<Path>, shape: [usize; 3]) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let bad = |reason: String| DataError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    if !has_image_extension(path) {
        return Err(bad(format!(
            "not a PNG or JPEG file name (extensions read: {})",
            EXTENSIONS.join(", ")
        )));
    }
    let image = ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| bad(e.to_string()))?;
    let [c, h, w] = shape;
    let image = match c {
        1 => DynamicImage::ImageLuma8(image.to_luma8()),
        _ => DynamicImage::ImageRgb8(image.to_rgb8()),
    };
    let (w32, h32) = (w as u32, h as u32);
    let image = if (image.width(), image.height()) == (w32, h32) {
        image
    } else {
        image.resize_to_fill(w32, h32, FilterType::Triangle)
    };
    // HWC (interleaved) to CHW (planes).
    let hwc = image.into_bytes();
    let mut chw = vec![0u8; c * h * w];
    for (i, &v) in hwc.iter().enumerate() {
        let (pixel, channel) = (i / c, i % c);
        chw[channel * h * w + pixel] = v;
    }
    Ok(chw)
}

/// Whether `path` ends in one of [`EXTENSIONS`] (any case).
fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The class folders of `dir` (sorted by name) with their image files (sorted, sub-folders
/// walked). Hidden entries (a leading `.`) are skipped; any other file is kept and refused
/// when decoded, so that a stray file is named rather than ignored.
fn list_classes(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    if !dir.is_dir() {
        return Err(DataError::FolderLayout {
            root: dir.to_path_buf(),
            reason: "is not a folder (the layout is <root>/train/<class>/ and \
                     <root>/test/<class>/, or <root>/<class>/)"
                .into(),
        });
    }
    let mut classes = Vec::new();
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            let name = entry
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files = Vec::new();
            walk(&entry, &mut files)?;
            if files.is_empty() {
                return Err(DataError::EmptyClass { dir: entry });
            }
            classes.push((name, files));
        } else {
            return Err(DataError::BadImage {
                path: entry,
                reason: "a file next to the class folders (images go inside <class>/)".into(),
            });
        }
    }
    if classes.is_empty() {
        return Err(DataError::FolderLayout {
            root: dir.to_path_buf(),
            reason: "holds no class folder".into(),
        });
    }
    if classes.len() > MAX_CLASSES {
        return Err(DataError::FolderLayout {
            root: dir.to_path_buf(),
            reason: format!(
                "holds {} class folders, at most {MAX_CLASSES} are read",
                classes.len()
            ),
        });
    }
    Ok(classes)
}

/// Every non-hidden file under `dir`, depth first, sorted within each folder.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            walk(&entry, files)?;
        } else {
            files.push(entry);
        }
    }
    Ok(())
}

/// The non-hidden entries of `dir`, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |e| DataError::io(dir, e);
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        entries.push(entry.path());
    }
    entries.sort();
    Ok(entries)
}

/// The class names, when `train` and `test` hold the same ones.
fn same_classes(
    root: &Path,
    train: &[(String, Vec<PathBuf>)],
    test: &[(String, Vec<PathBuf>)],
) -> Result<Vec<String>> {
    let names = |split: &[(String, Vec<PathBuf>)]| -> Vec<String> {
        split.iter().map(|(n, _)| n.clone()).collect()
    };
    let (train_names, test_names) = (names(train), names(test));
    for (have, lack, split) in [
        (&train_names, &test_names, TEST_DIR),
        (&test_names, &train_names, TRAIN_DIR),
    ] {
        if let Some(class) = have.iter().find(|c| !lack.contains(c)) {
            return Err(DataError::ClassMissing {
                root: root.to_path_buf(),
                class: class.clone(),
                split,
            });
        }
    }
    Ok(train_names)
}

/// `(file, label)` for every file, classes in order.
fn flatten(classes: Vec<(String, Vec<PathBuf>)>) -> Vec<(PathBuf, u8)> {
    classes
        .into_iter()
        .enumerate()
        .flat_map(|(label, (_, files))| files.into_iter().map(move |f| (f, label as u8)))
        .collect()
}

/// Image files with their labels.
type Labelled = Vec<(PathBuf, u8)>;

/// Splits each class's files at random (seeded): `round(test_fraction · n)` to the test part,
/// the rest to training, each part in file order. A class that would be missing from one part
/// (too few images for the fraction) is an error.
fn split_per_class(
    root: &Path,
    classes: Vec<(String, Vec<PathBuf>)>,
    options: &FolderOptions,
) -> Result<(Labelled, Labelled)> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (label, (name, files)) in classes.into_iter().enumerate() {
        let n = files.len();
        let held = (options.test_fraction * n as f64).round() as usize;
        if held == 0 || held == n {
            return Err(DataError::ClassMissing {
                root: root.to_path_buf(),
                class: name,
                split: if held == 0 { TEST_DIR } else { TRAIN_DIR },
            });
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut to_test = vec![false; n];
        for &i in &order[..held] {
            to_test[i] = true;
        }
        for (i, file) in files.into_iter().enumerate() {
            let part = if to_test[i] { &mut test } else { &mut train };
            part.push((file, label as u8));
        }
    }
    Ok((train, test))
}

/// Decodes every file into one dataset of `shape` images.
fn decode_all(
    files: &[(PathBuf, u8)],
    num_classes: usize,
    shape: [usize; 3],
) -> Result<ImageDataset> {
    let size: usize = shape.iter().product();
    let mut pixels = Vec::with_capacity(files.len() * size);
    let mut labels = Vec::with_capacity(files.len());
    for (path, label) in files {
        pixels.extend_from_slice(&read_image(path, shape)?);
        labels.push(*label);
    }
    ImageDataset::new(pixels, labels, shape, num_classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_out_of_range_are_refused_by_name() {
        let bad = |o: FolderOptions| match o.check() {
            Err(DataError::InvalidParameter { name, .. }) => name,
            other => panic!("{o:?}: {other:?}"),
        };
        assert_eq!(bad(FolderOptions::new([2, 8, 8])), "shape");
        assert_eq!(bad(FolderOptions::new([1, 0, 8])), "shape");
        for fraction in [0.0, 1.0, f64::NAN] {
            let o = FolderOptions {
                test_fraction: fraction,
                ..FolderOptions::new([1, 8, 8])
            };
            assert_eq!(bad(o), "test_fraction");
        }
    }
}
