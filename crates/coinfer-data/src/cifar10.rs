//! CIFAR-10 binary batches: records of one label byte followed by 3072 pixel bytes (the
//! 32x32 red plane, then green, then blue), as in the official `cifar-10-binary` archive.

use std::path::Path;

use crate::ImageDataset;
use crate::dataset::{TrainTest, check_labels};
use crate::error::{DataError, Result};
use crate::idx::read_file;

/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// Image side in pixels.
pub const SIDE: usize = 32;
/// Bytes per record: 1 label + 3 x 32 x 32 pixels.
pub const RECORD_SIZE: usize = 1 + 3 * SIDE * SIDE;
/// Class names, indexed by label.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
/// File names of the five training batches.
pub const TRAIN_BATCHES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// File name of the test batch.
pub const TEST_BATCH: &str = "test_batch.bin";

/// Reads one binary batch file with any number of records into a 3x32x32 dataset.
///
/// Fails with [`DataError::RecordSize`] when the file size is not a multiple of
/// [`RECORD_SIZE`] and with [`DataError::LabelOutOfRange`] for a label `>= 10`.
pub fn load_batch(path: impl AsRef<Path>) -> Result<ImageDataset> {
    let path = path.as_ref();
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    append_batch(path, &mut pixels, &mut labels)?;
    Ok(ImageDataset::from_checked_parts(
        pixels,
        labels,
        [3, SIDE, SIDE],
        NUM_CLASSES,
    ))
}

/// Loads the official layout from `dir`: [`TRAIN_BATCHES`] (50,000 images) as the training
/// set and [`TEST_BATCH`] (10,000 images) as the test set.
pub fn load_dir(dir: impl AsRef<Path>) -> Result<TrainTest> {
    let dir = dir.as_ref();
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for name in TRAIN_BATCHES {
        append_batch(&dir.join(name), &mut pixels, &mut labels)?;
    }
    let train = ImageDataset::from_checked_parts(pixels, labels, [3, SIDE, SIDE], NUM_CLASSES);
    Ok(TrainTest {
        train,
        test: load_batch(dir.join(TEST_BATCH))?,
    })
}

/// Appends the records of one batch file; pixels are already CHW in the file.
fn append_batch(path: &Path, pixels: &mut Vec<u8>, labels: &mut Vec<u8>) -> Result<()> {
    let bytes = read_file(path)?;
    if bytes.len() % RECORD_SIZE != 0 {
        return Err(DataError::RecordSize {
            path: path.into(),
            size: bytes.len() as u64,
            record_size: RECORD_SIZE,
        });
    }
    let records = bytes.len() / RECORD_SIZE;
    let new_labels: Vec<u8> = bytes.chunks_exact(RECORD_SIZE).map(|r| r[0]).collect();
    check_labels(&new_labels, NUM_CLASSES, &path.display().to_string())?;
    pixels.reserve(records * (RECORD_SIZE - 1));
    for record in bytes.chunks_exact(RECORD_SIZE) {
        pixels.extend_from_slice(&record[1..]);
    }
    labels.extend_from_slice(&new_labels);
    Ok(())
}
