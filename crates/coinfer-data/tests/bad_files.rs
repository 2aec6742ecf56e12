//! Malformed files give the specific error variant, and the message names the file.

use std::path::{Path, PathBuf};

use coinfer_data::idx::{self, IdxImages};
use coinfer_data::{DataError, cifar10, fashion_mnist};

/// A fresh directory for one test.
fn tmp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("coinfer-data-bad")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn images(count: usize, rows: usize, cols: usize) -> IdxImages {
    IdxImages {
        pixels: (0..count * rows * cols).map(|i| (i % 251) as u8).collect(),
        count,
        rows,
        cols,
    }
}

fn assert_names(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name {}: {msg}",
        path.display()
    );
}

#[test]
fn missing_file_is_io_error() {
    let path = tmp_dir("missing").join("nope.gz");
    let err = idx::read_images(&path).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert_names(&err, &path);
}

#[test]
fn truncated_gzip_is_corrupt_gzip() {
    let dir = tmp_dir("truncated-gzip");
    let full = dir.join("full.gz");
    idx::write_gz_images(&full, &images(50, 28, 28)).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.join("cut.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = idx::read_images(&cut).unwrap_err();
    assert!(matches!(err, DataError::CorruptGzip { .. }), "{err}");
    assert_names(&err, &cut);
}

#[test]
fn corrupted_gzip_payload_is_corrupt_gzip() {
    let dir = tmp_dir("flipped-gzip");
    let path = dir.join("flipped.gz");
    idx::write_gz_labels(&path, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 5; // inside the CRC32 trailer
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let err = idx::read_labels(&path).unwrap_err();
    assert!(matches!(err, DataError::CorruptGzip { .. }), "{err}");
    assert_names(&err, &path);
}

#[test]
fn labels_read_as_images_is_wrong_magic() {
    let path = tmp_dir("wrong-magic").join("labels.gz");
    idx::write_gz_labels(&path, &[0, 1, 2]).unwrap();
    let err = idx::read_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::WrongMagic {
                expected: 0x803,
                got: 0x801,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
}

#[test]
fn plain_file_with_wrong_magic_says_it_is_not_gzip() {
    let path = tmp_dir("not-gzip").join("text.idx");
    std::fs::write(&path, b"hello, world").unwrap();
    let err = idx::read_labels(&path).unwrap_err();
    assert!(matches!(err, DataError::WrongMagic { .. }), "{err}");
    assert!(err.to_string().contains("not gzip"), "{err}");
    assert_names(&err, &path);
}

#[test]
fn truncated_body_is_truncated() {
    let path = tmp_dir("truncated-body").join("short.idx");
    let mut bytes = idx::IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [10u32, 28, 28] {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend(vec![7u8; 9 * 784]); // one image short
    std::fs::write(&path, &bytes).unwrap();
    let err = idx::read_images(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 7856,
                got: 7072,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
    assert!(
        err.to_string().contains("expected 7856 bytes, got 7072"),
        "{err}"
    );
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = tmp_dir("count-mismatch");
    let (img, lab) = (dir.join("img.gz"), dir.join("lab.gz"));
    idx::write_gz_images(&img, &images(3, 4, 4)).unwrap();
    idx::write_gz_labels(&lab, &[0, 1]).unwrap();
    let err = idx::read_dataset(&img, &lab, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::CountMismatch {
                images: 3,
                labels: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &img);
    assert_names(&err, &lab);
}

#[test]
fn idx_label_out_of_range() {
    let dir = tmp_dir("idx-label-range");
    let (img, lab) = (dir.join("img.gz"), dir.join("lab.gz"));
    idx::write_gz_images(&img, &images(3, 4, 4)).unwrap();
    idx::write_gz_labels(&lab, &[0, 10, 1]).unwrap();
    let err = idx::read_dataset(&img, &lab, 10).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                num_classes: 10,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &lab);
}

#[test]
fn fashion_mnist_dir_with_wrong_image_size_is_wrong_dims() {
    let dir = tmp_dir("fashion-wrong-dims");
    for (img, lab) in [
        (fashion_mnist::TRAIN_IMAGES, fashion_mnist::TRAIN_LABELS),
        (fashion_mnist::TEST_IMAGES, fashion_mnist::TEST_LABELS),
    ] {
        idx::write_gz_images(dir.join(img), &images(2, 27, 28)).unwrap();
        idx::write_gz_labels(dir.join(lab), &[0, 1]).unwrap();
    }
    let err = fashion_mnist::load_dir(&dir).unwrap_err();
    assert!(matches!(err, DataError::WrongDims { .. }), "{err}");
    assert_names(&err, &dir.join(fashion_mnist::TRAIN_IMAGES));
}

#[test]
fn fashion_mnist_dir_missing_file_names_it() {
    let dir = tmp_dir("fashion-missing");
    let err = fashion_mnist::load_dir(&dir).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert_names(&err, &dir.join(fashion_mnist::TRAIN_IMAGES));
}

#[test]
fn cifar_size_not_multiple_of_record() {
    let path = tmp_dir("cifar-size").join("batch.bin");
    std::fs::write(&path, vec![0u8; 2 * cifar10::RECORD_SIZE + 5]).unwrap();
    let err = cifar10::load_batch(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::RecordSize {
                size: 6151,
                record_size: 3073,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
}

#[test]
fn cifar_label_out_of_range() {
    let path = tmp_dir("cifar-label").join("batch.bin");
    let mut bytes = vec![0u8; 3 * cifar10::RECORD_SIZE];
    bytes[2 * cifar10::RECORD_SIZE] = 10;
    std::fs::write(&path, &bytes).unwrap();
    let err = cifar10::load_batch(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 2,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
    assert_names(&err, &path);
}

#[test]
fn cifar_dir_missing_batch_names_it() {
    let dir = tmp_dir("cifar-missing");
    std::fs::write(
        dir.join("data_batch_1.bin"),
        vec![0u8; cifar10::RECORD_SIZE],
    )
    .unwrap();
    let err = cifar10::load_dir(&dir).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
    assert_names(&err, &dir.join("data_batch_2.bin"));
}

#[test]
fn writer_rejects_inconsistent_images() {
    let path = tmp_dir("writer").join("bad.gz");
    let mut bad = images(2, 3, 3);
    bad.pixels.pop();
    let err = idx::write_gz_images(&path, &bad).unwrap_err();
    assert!(matches!(err, DataError::WrongDims { .. }), "{err}");
}
