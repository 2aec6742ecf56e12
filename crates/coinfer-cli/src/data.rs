//! `--dataset fashion-mnist|mnist|cifar10|folder` with `--data-dir`: the images a command
//! trains and scores on. Without `--data-dir` the embedded Fashion-MNIST subset is used.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use coinfer_automl::data::folder::{self, FolderOptions};
use coinfer_automl::data::{DataError, ImageDataset, TrainTest, cifar10, embedded, fashion_mnist};

/// A data-set format the CLI reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetChoice {
    /// Fashion-MNIST: IDX files (`train-images-idx3-ubyte.gz`, ...), 28×28 grey.
    FashionMnist,
    /// MNIST: the same IDX file names and format, 28×28 grey.
    Mnist,
    /// CIFAR-10 binary batches (`data_batch_1.bin` … `test_batch.bin`), 32×32 colour.
    Cifar10,
    /// An image folder: `train/<class>/` and `test/<class>/`, or `<class>/` split 80/20 per
    /// class; PNG or JPEG, any size, grey or colour, brought to the model's input (resized to
    /// cover it, centre-cropped).
    Folder,
}

/// Why the images could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Only Fashion-MNIST is embedded in the binary.
    #[error("--dataset {0} needs --data-dir (only a Fashion-MNIST subset is embedded)")]
    NeedsDataDir(&'static str),
    /// A CIFAR-10 folder with neither the official layout nor any `.bin` batch.
    #[error("{dir}: no CIFAR-10 binary batches (neither data_batch_1.bin … nor any *.bin file)")]
    NoCifarBatches {
        /// The folder.
        dir: PathBuf,
    },
    /// Too few images to hold out a test part.
    #[error("{dir}: {images} CIFAR-10 images are too few to split into train and test parts")]
    TooFewImages {
        /// The folder.
        dir: PathBuf,
        /// How many images it holds.
        images: usize,
    },
    /// The folder could not be listed.
    #[error("{dir}: {source}")]
    Io {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A reader of `coinfer-data` failed.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl DatasetChoice {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DatasetChoice::FashionMnist => "fashion-mnist",
            DatasetChoice::Mnist => "mnist",
            DatasetChoice::Cifar10 => "cifar10",
            DatasetChoice::Folder => "folder",
        }
    }
}

/// Share of the images held out as the test part when a CIFAR-10 folder has no official
/// `test_batch.bin` (e.g. the 20-image sample).
pub const CIFAR_TEST_FRACTION: f64 = 0.2;

/// Loads the images and names them (the run label used in caches and reports):
/// `fashion-mnist-subset` (embedded), `<dataset>-full` (an official layout),
/// `cifar10-<n>` (`n` images from loose CIFAR-10 batch files, split 80/20 with `seed`) or
/// `folder-<name>-<n>` (`n` images of the folder `name`, brought to `input`, the model's
/// `[channels, height, width]`), and the class names in label order (a folder's; empty otherwise).
pub fn load(
    dataset: DatasetChoice,
    dir: Option<&Path>,
    seed: u64,
    input: [usize; 3],
) -> Result<(TrainTest, String, Vec<String>), DatasetError> {
    let Some(dir) = dir else {
        return match dataset {
            DatasetChoice::FashionMnist => Ok((
                embedded::fashion_mnist_subset()?,
                "fashion-mnist-subset".into(),
                Vec::new(),
            )),
            other => Err(DatasetError::NeedsDataDir(other.name())),
        };
    };
    match dataset {
        DatasetChoice::FashionMnist | DatasetChoice::Mnist => Ok((
            fashion_mnist::load_dir(dir)?,
            format!("{}-full", dataset.name()),
            Vec::new(),
        )),
        DatasetChoice::Cifar10 if dir.join(cifar10::TRAIN_BATCHES[0]).exists() => {
            Ok((cifar10::load_dir(dir)?, "cifar10-full".into(), Vec::new()))
        }
        DatasetChoice::Cifar10 => {
            loose_cifar_batches(dir, seed).map(|(data, label)| (data, label, Vec::new()))
        }
        DatasetChoice::Folder => {
            let options = FolderOptions {
                seed,
                ..FolderOptions::new(input)
            };
            let read = folder::load(dir, &options)?;
            println!("classes (label order): {}", read.classes.join(", "));
            let name = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "images".into());
            let images = read.data.train.len() + read.data.test.len();
            Ok((read.data, format!("folder-{name}-{images}"), read.classes))
        }
    }
}

/// The `[channels, height, width]` a zoo model takes (what `--dataset folder` brings the
/// images to), or `None` for an unknown name.
pub fn model_input(model: &str) -> Option<[usize; 3]> {
    coinfer_automl::split::zoo::by_name(model, 2).map(|spec| spec.input.dims())
}

/// Every `*.bin` in `dir` (sorted by name) as one set, split into train and test parts.
fn loose_cifar_batches(dir: &Path, seed: u64) -> Result<(TrainTest, String), DatasetError> {
    let io = |source| DatasetError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    files.retain(|p| p.extension().is_some_and(|e| e == "bin"));
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::NoCifarBatches {
            dir: dir.to_path_buf(),
        });
    }
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for file in &files {
        let batch = cifar10::load_batch(file)?;
        pixels.extend_from_slice(batch.pixels());
        labels.extend_from_slice(batch.labels());
    }
    let all = ImageDataset::new(
        pixels,
        labels,
        [3, cifar10::SIDE, cifar10::SIDE],
        cifar10::NUM_CLASSES,
    )?;
    let (test, train) = all.split(CIFAR_TEST_FRACTION, seed)?;
    if test.is_empty() || train.is_empty() {
        return Err(DatasetError::TooFewImages {
            dir: dir.to_path_buf(),
            images: all.len(),
        });
    }
    let name = format!("cifar10-{}", all.len());
    Ok((TrainTest { train, test }, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mnist_without_a_folder_is_a_typed_error() {
        let err = load(DatasetChoice::Mnist, None, 1, [1, 28, 28]).unwrap_err();
        assert!(matches!(err, DatasetError::NeedsDataDir("mnist")), "{err}");
    }

    #[test]
    fn an_mnist_folder_is_read_as_idx_and_labelled_mnist() {
        use coinfer_automl::data::idx::{IdxImages, write_gz_images, write_gz_labels};
        let dir = std::env::temp_dir().join(format!("coinfer-mnist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let images = |count: usize| IdxImages {
            pixels: (0..count * 28 * 28).map(|i| (i % 251) as u8).collect(),
            count,
            rows: 28,
            cols: 28,
        };
        write_gz_images(dir.join(fashion_mnist::TRAIN_IMAGES), &images(4)).unwrap();
        write_gz_labels(dir.join(fashion_mnist::TRAIN_LABELS), &[0, 1, 2, 9]).unwrap();
        write_gz_images(dir.join(fashion_mnist::TEST_IMAGES), &images(2)).unwrap();
        write_gz_labels(dir.join(fashion_mnist::TEST_LABELS), &[3, 4]).unwrap();
        let (data, name, _) = load(DatasetChoice::Mnist, Some(&dir), 1, [1, 28, 28]).unwrap();
        assert_eq!(name, "mnist-full");
        assert_eq!((data.train.len(), data.test.len()), (4, 2));
        assert_eq!(data.train.image_shape(), [1, 28, 28]);
        assert_eq!(data.train.num_classes(), 10);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_without_cifar_batches_is_a_typed_error() {
        let dir = std::env::temp_dir().join(format!("coinfer-no-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = load(DatasetChoice::Cifar10, Some(&dir), 1, [3, 32, 32]).unwrap_err();
        assert!(matches!(err, DatasetError::NoCifarBatches { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn loose_cifar_records_split_into_train_and_test() {
        let dir = std::env::temp_dir().join(format!("coinfer-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Ten records, label i, every pixel byte i.
        let bytes: Vec<u8> = (0..10u8)
            .flat_map(|i| {
                std::iter::once(i).chain(std::iter::repeat_n(i, cifar10::RECORD_SIZE - 1))
            })
            .collect();
        std::fs::write(dir.join("sample.bin"), bytes).unwrap();
        let (data, name, _) = load(DatasetChoice::Cifar10, Some(&dir), 7, [3, 32, 32]).unwrap();
        assert_eq!(name, "cifar10-10");
        assert_eq!((data.train.len(), data.test.len()), (8, 2));
        assert_eq!(data.train.image_shape(), [3, 32, 32]);
        let mut seen: Vec<u8> = data
            .train
            .labels()
            .iter()
            .chain(data.test.labels())
            .copied()
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<u8>>());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
