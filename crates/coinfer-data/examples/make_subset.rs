//! Generates the embedded Fashion-MNIST subset in `assets/fashion-mnist-subset/`.
//!
//! Takes, in file order, the first 600 images of each class from the official training set
//! and the first 100 of each class from the official test set, and writes them as gzipped IDX
//! files with this crate's own writer, plus the licence and a README.
//!
//! ```text
//! cargo run --release -p coinfer-data --example make_subset -- [SOURCE_DIR] [OUT_DIR]
//! ```
//! SOURCE_DIR defaults to `fashion_mnist::default_dir()`, OUT_DIR to this crate's
//! `assets/fashion-mnist-subset`. The output is deterministic (gzip mtime 0, level 9).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use coinfer_data::fashion_mnist::{self, NUM_CLASSES};
use coinfer_data::idx::{self, IdxImages};
use coinfer_data::{DataError, ImageDataset};

const TRAIN_PER_CLASS: usize = 600;
const TEST_PER_CLASS: usize = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let source = match args.next() {
        Some(dir) => PathBuf::from(dir),
        None => fashion_mnist::default_dir()?,
    };
    let out = args.next().map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fashion-mnist-subset")
    });
    std::fs::create_dir_all(&out).map_err(|e| DataError::Io {
        path: out.clone(),
        source: e,
    })?;

    let full = fashion_mnist::load_dir(&source)?;
    let train_idx = first_per_class(&full.train, TRAIN_PER_CLASS)?;
    let test_idx = first_per_class(&full.test, TEST_PER_CLASS)?;
    let train = full.train.subset(&train_idx)?;
    let test = full.test.subset(&test_idx)?;

    write_pair(
        &out,
        fashion_mnist::TRAIN_IMAGES,
        fashion_mnist::TRAIN_LABELS,
        &train,
    )?;
    write_pair(
        &out,
        fashion_mnist::TEST_IMAGES,
        fashion_mnist::TEST_LABELS,
        &test,
    )?;
    // Read and write rather than copy: a copy would keep the source's read-only mode.
    std::fs::write(
        out.join("COPYRIGHT"),
        std::fs::read(source.join("COPYRIGHT"))?,
    )?;

    // Read back what was written: the files must reproduce the subsets exactly.
    let check = fashion_mnist::load_dir(&out)?;
    if check.train != train || check.test != test {
        return Err("written subset does not read back identically".into());
    }

    std::fs::write(
        out.join("README.md"),
        readme(&out, &full.train, &train_idx, &full.test, &test_idx)?,
    )?;
    println!(
        "wrote {} train + {} test images to {}",
        train.len(),
        test.len(),
        out.display()
    );
    Ok(())
}

/// Indices (ascending) of the first `per_class` images of every class, in file order.
fn first_per_class(data: &ImageDataset, per_class: usize) -> Result<Vec<usize>, DataError> {
    let mut taken = [0usize; NUM_CLASSES];
    let mut indices = Vec::with_capacity(per_class * NUM_CLASSES);
    for (i, &label) in data.labels().iter().enumerate() {
        let count = &mut taken[label as usize];
        if *count < per_class {
            *count += 1;
            indices.push(i);
        }
    }
    if let Some(class) = taken.iter().position(|&n| n < per_class) {
        return Err(DataError::NotEnoughItems {
            class,
            wanted: per_class,
            available: taken[class],
        });
    }
    Ok(indices)
}

fn write_pair(
    out: &Path,
    images_name: &str,
    labels_name: &str,
    data: &ImageDataset,
) -> Result<(), DataError> {
    let [_, rows, cols] = data.image_shape();
    let images = IdxImages {
        pixels: data.pixels().to_vec(),
        count: data.len(),
        rows,
        cols,
    };
    idx::write_gz_images(out.join(images_name), &images)?;
    idx::write_gz_labels(out.join(labels_name), data.labels())
}

/// For each class, the official index of the last image taken: the subset is exactly the
/// images of that class with an index up to it.
fn last_index_per_class(full: &ImageDataset, indices: &[usize]) -> [usize; NUM_CLASSES] {
    let mut last = [0; NUM_CLASSES];
    for &i in indices {
        last[full.labels()[i] as usize] = i;
    }
    last
}

fn readme(
    out: &Path,
    full_train: &ImageDataset,
    train_idx: &[usize],
    full_test: &ImageDataset,
    test_idx: &[usize],
) -> Result<String, Box<dyn std::error::Error>> {
    let mut s = String::new();
    writeln!(
        s,
        "# Fashion-MNIST class-balanced subset (embedded in coinfer-data)\n"
    )?;
    writeln!(
        s,
        "Real Fashion-MNIST images (Zalando SE, MIT licence, see `COPYRIGHT`), taken from the \
         official gzipped IDX files as shipped by the Debian package `dataset-fashion-mnist` \
         (`/usr/share/datasets/fashion-mnist/`, copied to `shared/data/fashion-mnist/`).\n"
    )?;
    writeln!(s, "## How it was made\n")?;
    writeln!(
        s,
        "Tool: `crates/coinfer-data/examples/make_subset.rs` \
         (`cargo run --release -p coinfer-data --example make_subset`), which reads the full \
         sets with `coinfer_data::fashion_mnist::load_dir` and writes with \
         `coinfer_data::idx::write_gz_images` / `write_gz_labels` (gzip level 9, mtime 0, so \
         the output is reproducible byte for byte).\n"
    )?;
    writeln!(
        s,
        "- `train-*`: the first {TRAIN_PER_CLASS} images of each class in the order of the \
         official training set (60,000 images), {} images in all.",
        train_idx.len()
    )?;
    writeln!(
        s,
        "- `t10k-*`: the first {TEST_PER_CLASS} images of each class in the order of the \
         official test set (10,000 images), {} images in all.",
        test_idx.len()
    )?;
    writeln!(
        s,
        "- Images keep their official relative order (indices ascending); pixels and labels \
         are unchanged.\n"
    )?;
    writeln!(
        s,
        "So the subset of class `c` is every official image of class `c` whose 0-based index \
         is at most:\n"
    )?;
    writeln!(s, "| class | name | last train index | last test index |")?;
    writeln!(s, "|---|---|---|---|")?;
    let last_train = last_index_per_class(full_train, train_idx);
    let last_test = last_index_per_class(full_test, test_idx);
    for c in 0..NUM_CLASSES {
        writeln!(
            s,
            "| {c} | {} | {} | {} |",
            fashion_mnist::CLASS_NAMES[c],
            last_train[c],
            last_test[c]
        )?;
    }
    writeln!(s, "\n## Files\n")?;
    writeln!(s, "| file | bytes |")?;
    writeln!(s, "|---|---|")?;
    for name in [
        fashion_mnist::TRAIN_IMAGES,
        fashion_mnist::TRAIN_LABELS,
        fashion_mnist::TEST_IMAGES,
        fashion_mnist::TEST_LABELS,
        "COPYRIGHT",
    ] {
        let len = std::fs::metadata(out.join(name))?.len();
        writeln!(s, "| `{name}` | {len} |")?;
    }
    Ok(s)
}
