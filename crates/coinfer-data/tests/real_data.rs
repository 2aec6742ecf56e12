//! Reading the real data sets: the shared copies of Fashion-MNIST and the CIFAR-10 sample,
//! and the embedded subset.

use std::path::PathBuf;

use coinfer_data::{ImageDataset, Normalization, cifar10, embedded, fashion_mnist};

/// `shared/data/<sub>`: `$COINFER_SHARED_DATA/<sub>` when that variable is set (a checkout
/// elsewhere on disk), else `../shared/data/<sub>` next to the repository. The tests that need
/// it are `#[ignore]`d (a fresh clone has no `../shared`) and `.ci/run` runs them by name; run
/// one by hand, they fail with what to install when the folder is absent, never pass unseen.
fn shared_data(sub: &str) -> PathBuf {
    let root = std::env::var_os("COINFER_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = root.join(sub);
    assert!(
        dir.is_dir(),
        "{} is absent: this test reads the project's shared data (README, \"Tests that need \
         data outside the repository\"); put it at ../shared/data next to the repository or set \
         COINFER_SHARED_DATA (Fashion-MNIST: Debian package dataset-fashion-mnist, folder \
         /usr/share/datasets/fashion-mnist)",
        dir.display()
    );
    dir
}

/// Indices of the first `per_class` images of each class, in file order.
fn first_per_class(data: &ImageDataset, per_class: usize) -> Vec<usize> {
    let mut taken = vec![0; data.num_classes()];
    let mut out = Vec::new();
    for (i, &l) in data.labels().iter().enumerate() {
        if taken[l as usize] < per_class {
            taken[l as usize] += 1;
            out.push(i);
        }
    }
    out
}

#[test]
#[ignore = "needs ../shared/data/fashion-mnist (run by .ci/run; README)"]
fn full_fashion_mnist_reads_with_official_counts() {
    let dir = shared_data("fashion-mnist");
    let data = fashion_mnist::load_dir(&dir).unwrap();
    assert_eq!(data.test.len(), 10_000);
    assert_eq!(data.test.class_counts(), vec![1_000; 10]);
    assert_eq!(data.test.image_shape(), [1, 28, 28]);
    assert_eq!(data.train.len(), 60_000);
    assert_eq!(data.train.class_counts(), vec![6_000; 10]);
    // The first test image of Fashion-MNIST is an ankle boot, the first training one too.
    assert_eq!(data.test.labels()[0], 9);
    assert_eq!(data.train.labels()[0], 9);

    // The preset is the statistics of the training set.
    let fitted = Normalization::fit(&data.train);
    let preset = Normalization::fashion_mnist();
    assert!((fitted.mean[0] - preset.mean[0]).abs() < 1e-3, "{fitted:?}");
    assert!((fitted.std[0] - preset.std[0]).abs() < 1e-3, "{fitted:?}");

    // The embedded subset is exactly what its README says: the first 600 (100) per class.
    let embedded = embedded::fashion_mnist_subset().unwrap();
    let train = data
        .train
        .subset(&first_per_class(&data.train, 600))
        .unwrap();
    let test = data.test.subset(&first_per_class(&data.test, 100)).unwrap();
    assert!(embedded.train == train, "embedded train subset differs");
    assert!(embedded.test == test, "embedded test subset differs");
}

#[test]
fn embedded_subset_is_class_balanced() {
    let data = embedded::fashion_mnist_subset().unwrap();
    assert_eq!(data.train.len(), 6_000);
    assert_eq!(data.test.len(), 1_000);
    assert_eq!(
        data.train.class_counts(),
        vec![embedded::TRAIN_PER_CLASS; 10]
    );
    assert_eq!(data.test.class_counts(), vec![embedded::TEST_PER_CLASS; 10]);
    assert_eq!(data.train.image_shape(), [1, 28, 28]);
    assert_eq!(data.train.num_classes(), 10);
    // Real images, not blanks: Fashion-MNIST has about half its pixels at zero.
    let nonzero = data.test.pixels().iter().filter(|&&p| p > 0).count();
    let share = nonzero as f64 / data.test.pixels().len() as f64;
    assert!((0.3..0.7).contains(&share), "non-zero share {share}");
}

const CIFAR_SAMPLE_LABELS: [u8; 20] = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6];

#[test]
#[ignore = "needs ../shared/data/cifar10-sample (run by .ci/run; README)"]
fn cifar10_sample_has_the_official_first_labels() {
    let dir = shared_data("cifar10-sample");
    let data = cifar10::load_batch(dir.join("test_batch_sample.bin")).unwrap();
    assert_eq!(data.len(), 20);
    assert_eq!(data.labels(), &CIFAR_SAMPLE_LABELS);
    assert_eq!(data.image_shape(), [3, 32, 32]);
    assert_eq!(data.num_classes(), 10);
    // Pixels are the bytes after each record's label byte, planes R, G, B.
    let raw = std::fs::read(dir.join("test_batch_sample.bin")).unwrap();
    assert_eq!(
        data.image(1),
        &raw[cifar10::RECORD_SIZE + 1..2 * cifar10::RECORD_SIZE]
    );
}

#[test]
#[ignore = "needs ../shared/data/cifar10-sample (run by .ci/run; README)"]
fn cifar10_dir_concatenates_the_training_batches() {
    let dir = shared_data("cifar10-sample");
    let sample = std::fs::read(dir.join("test_batch_sample.bin")).unwrap();
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("coinfer-data-cifar-dir");
    std::fs::create_dir_all(&tmp).unwrap();
    // Batches of 4 to 20 records: load_dir must take them in order 1..5.
    for (k, name) in cifar10::TRAIN_BATCHES.iter().enumerate() {
        let records = 4 * (k + 1);
        std::fs::write(tmp.join(name), &sample[..records * cifar10::RECORD_SIZE]).unwrap();
    }
    std::fs::write(tmp.join(cifar10::TEST_BATCH), &sample).unwrap();
    let data = cifar10::load_dir(&tmp).unwrap();
    assert_eq!(data.train.len(), 4 + 8 + 12 + 16 + 20);
    assert_eq!(&data.train.labels()[..4], &CIFAR_SAMPLE_LABELS[..4]);
    assert_eq!(&data.train.labels()[4..12], &CIFAR_SAMPLE_LABELS[..8]);
    assert_eq!(data.test.labels(), &CIFAR_SAMPLE_LABELS);
}
