//! Image folders: a real folder of PNG files written at test time from the embedded
//! Fashion-MNIST subset reads back as the same images and labels; colour, resizing and
//! centre-cropping; every refused input is a typed error naming its culprit.

use std::path::{Path, PathBuf};

use coinfer_data::folder::{self, FolderLayout, FolderOptions};
use coinfer_data::{DataError, ImageDataset, Normalization, embedded, fashion_mnist};
use image::{GrayImage, ImageFormat, Rgb, RgbImage};

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("folder-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Folder name of Fashion-MNIST class `label`: sorted names follow the label order.
fn class_dir(label: u8) -> String {
    let name = fashion_mnist::CLASS_NAMES[label as usize].replace('/', "-");
    format!("{label:02}-{name}")
}

/// Writes every image of `data` as `dir/<class>/<index>.png` (8-bit grey, 28×28).
fn write_pngs(data: &ImageDataset, dir: &Path) {
    let [_, h, w] = data.image_shape();
    for (i, &label) in data.labels().iter().enumerate() {
        let class = dir.join(class_dir(label));
        std::fs::create_dir_all(&class).unwrap();
        let image = GrayImage::from_raw(w as u32, h as u32, data.image(i).to_vec()).unwrap();
        image.save(class.join(format!("{i:05}.png"))).unwrap();
    }
}

/// `data` reordered as a folder lists it: by class, then by file name (the original index).
fn in_folder_order(data: &ImageDataset) -> ImageDataset {
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| (data.labels()[i], i));
    data.subset(&order).unwrap()
}

fn small_subset() -> coinfer_data::TrainTest {
    let full = embedded::fashion_mnist_subset().unwrap();
    coinfer_data::TrainTest {
        train: full.train.class_balanced_subset(6, 1).unwrap(),
        test: full.test.class_balanced_subset(2, 1).unwrap(),
    }
}

#[test]
fn a_train_test_folder_of_pngs_reads_back_as_the_same_images_and_labels() {
    let data = small_subset();
    let root = scratch("train-test");
    write_pngs(&data.train, &root.join("train"));
    write_pngs(&data.test, &root.join("test"));
    let read = folder::load(&root, &FolderOptions::new([1, 28, 28])).unwrap();
    assert_eq!(read.layout, FolderLayout::TrainTest);
    let expected: Vec<String> = (0..10).map(class_dir).collect();
    assert_eq!(read.classes, expected);
    let (train, test) = (in_folder_order(&data.train), in_folder_order(&data.test));
    assert_eq!(read.data.train.labels(), train.labels());
    assert!(read.data.train == train, "training pixels differ");
    assert!(read.data.test == test, "test pixels differ");
    assert_eq!(read.normalization, Normalization::fit(&train));
    // Read as colour, every plane is the grey image.
    let colour = folder::load(&root, &FolderOptions::new([3, 28, 28])).unwrap();
    assert_eq!(colour.data.test.image_shape(), [3, 28, 28]);
    let (grey, rgb) = (test.image(3), colour.data.test.image(3));
    for plane in rgb.chunks(28 * 28) {
        assert_eq!(plane, grey);
    }
}

#[test]
fn a_pooled_folder_is_split_per_class_by_the_seed() {
    let data = small_subset();
    let root = scratch("pooled");
    write_pngs(&data.train, &root);
    let options = FolderOptions {
        test_fraction: 0.5,
        seed: 7,
        ..FolderOptions::new([1, 28, 28])
    };
    let read = folder::load(&root, &options).unwrap();
    assert_eq!(read.layout, FolderLayout::Pooled);
    // Half of each class's 6 images in each part.
    assert_eq!(read.data.train.class_counts(), vec![3; 10]);
    assert_eq!(read.data.test.class_counts(), vec![3; 10]);
    // Together the parts are the written images, each once.
    let key = |d: &ImageDataset, i: usize| (d.labels()[i], d.image(i).to_vec());
    let mut seen: Vec<_> = (0..read.data.train.len())
        .map(|i| key(&read.data.train, i))
        .chain((0..read.data.test.len()).map(|i| key(&read.data.test, i)))
        .collect();
    let mut written: Vec<_> = (0..data.train.len()).map(|i| key(&data.train, i)).collect();
    seen.sort();
    written.sort();
    assert!(seen == written, "the parts are not the written images");
    // The same seed gives the same split; another seed another one.
    assert!(folder::load(&root, &options).unwrap() == read);
    let other = FolderOptions { seed: 8, ..options };
    assert!(folder::load(&root, &other).unwrap().data.test != read.data.test);
}

/// A 60×28 RGB image: red, green and blue vertical bands of 20 columns.
fn bands() -> RgbImage {
    RgbImage::from_fn(60, 28, |x, _| match x / 20 {
        0 => Rgb([255, 0, 0]),
        1 => Rgb([0, 255, 0]),
        _ => Rgb([0, 0, 255]),
    })
}

#[test]
fn colour_images_are_resized_to_cover_and_centre_cropped() {
    let dir = scratch("bands");
    let png = dir.join("bands.png");
    bands().save(&png).unwrap();
    // 60×28 to 28×28: no scaling (the height fits), columns 16..44 kept: 4 red, 20 green,
    // 4 blue.
    let chw = folder::read_image(&png, [3, 28, 28]).unwrap();
    let at = |c: usize, y: usize, x: usize| chw[c * 28 * 28 + y * 28 + x];
    for y in [0, 13, 27] {
        assert_eq!((at(0, y, 0), at(1, y, 0), at(2, y, 0)), (255, 0, 0), "left");
        assert_eq!(
            (at(0, y, 14), at(1, y, 14), at(2, y, 14)),
            (0, 255, 0),
            "centre"
        );
        assert_eq!(
            (at(0, y, 27), at(1, y, 27), at(2, y, 27)),
            (0, 0, 255),
            "right"
        );
    }
    // Down to 14×14: halved, then the same crop; the centre stays green.
    let small = folder::read_image(&png, [3, 14, 14]).unwrap();
    let centre = 7 * 14 + 7;
    assert_eq!(
        (small[centre], small[196 + centre], small[2 * 196 + centre]),
        (0, 255, 0)
    );
    // Up to 56×56: every pixel is one of the bands' colours or a blend at their borders,
    // and the middle column is green.
    let large = folder::read_image(&png, [3, 56, 56]).unwrap();
    assert_eq!(large.len(), 3 * 56 * 56);
    let mid = 28 * 56 + 28;
    assert_eq!(
        (large[mid], large[3136 + mid], large[2 * 3136 + mid]),
        (0, 255, 0)
    );
}

#[test]
fn jpeg_and_grey_conversion_read_a_uniform_colour_back() {
    let dir = scratch("jpeg");
    let jpeg = dir.join("grey.JPG");
    RgbImage::from_pixel(40, 30, Rgb([120, 120, 120]))
        .save_with_format(&jpeg, ImageFormat::Jpeg)
        .unwrap();
    let grey = folder::read_image(&jpeg, [1, 28, 28]).unwrap();
    assert_eq!(grey.len(), 28 * 28);
    // JPEG is lossy: a flat grey comes back within a step or two.
    assert!(grey.iter().all(|&v| v.abs_diff(120) <= 2), "{grey:?}");
}

fn assert_refused_naming(err: DataError, culprit: &Path) {
    let message = err.to_string();
    assert!(
        message.contains(&culprit.display().to_string()),
        "`{message}` does not name {}",
        culprit.display()
    );
}

#[test]
fn refused_inputs_are_typed_errors_naming_the_culprit() {
    let options = FolderOptions::new([1, 28, 28]);
    let data = small_subset();
    let fresh = |name: &str| {
        let root = scratch(name);
        write_pngs(&data.train, &root.join("train"));
        write_pngs(&data.test, &root.join("test"));
        root
    };

    // A text file among the images.
    let root = fresh("stray");
    let stray = root.join("train").join(class_dir(3)).join("notes.txt");
    std::fs::write(&stray, "not an image").unwrap();
    let err = folder::load(&root, &options).unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }), "{err}");
    assert_refused_naming(err, &stray);

    // A PNG that does not decode.
    let root = fresh("corrupt");
    let corrupt = std::fs::read_dir(root.join("test").join(class_dir(5)))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&corrupt).unwrap();
    std::fs::write(&corrupt, &bytes[..bytes.len() / 2]).unwrap();
    let err = folder::load(&root, &options).unwrap_err();
    assert!(matches!(err, DataError::BadImage { .. }), "{err}");
    assert_refused_naming(err, &corrupt);

    // An empty class folder.
    let root = fresh("empty");
    let empty = root.join("train").join("10-nothing");
    std::fs::create_dir_all(&empty).unwrap();
    let err = folder::load(&root, &options).unwrap_err();
    assert!(matches!(err, DataError::EmptyClass { .. }), "{err}");
    assert_refused_naming(err, &empty);

    // A class missing from the test split.
    let root = fresh("missing");
    std::fs::remove_dir_all(root.join("test").join(class_dir(9))).unwrap();
    let err = folder::load(&root, &options).unwrap_err();
    match &err {
        DataError::ClassMissing { class, split, .. } => {
            assert_eq!((class.as_str(), *split), (class_dir(9).as_str(), "test"));
        }
        other => panic!("expected ClassMissing, got {other}"),
    }

    // A pooled class too small to hold any image out.
    let root = scratch("tiny-class");
    write_pngs(&data.test.class_balanced_subset(1, 1).unwrap(), &root);
    let err = folder::load(&root, &options).unwrap_err();
    assert!(
        matches!(err, DataError::ClassMissing { split: "test", .. }),
        "{err}"
    );

    // A root that is not a folder, and one without classes.
    let nowhere = scratch("nowhere").join("absent");
    let err = folder::load(&nowhere, &options).unwrap_err();
    assert!(matches!(err, DataError::FolderLayout { .. }), "{err}");
    assert_refused_naming(err, &nowhere);
    let bare = scratch("bare");
    let err = folder::load(&bare, &options).unwrap_err();
    assert!(matches!(err, DataError::FolderLayout { .. }), "{err}");
}
