//! Seeded splits, batches as burn tensors, and normalisation.

use burn::prelude::*;
use coinfer_data::{Batches, DataError, ImageDataset, Normalization, embedded};

fn test_set() -> ImageDataset {
    embedded::fashion_mnist_subset().unwrap().test
}

fn floats(t: Tensor<4>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn ints(t: Tensor<1, Int>) -> Vec<i64> {
    t.into_data().iter::<i64>().collect()
}

#[test]
fn split_is_deterministic_by_seed() {
    let data = test_set();
    let (a1, b1) = data.split(0.8, 7).unwrap();
    let (a2, b2) = data.split(0.8, 7).unwrap();
    let (a3, _) = data.split(0.8, 8).unwrap();
    assert_eq!((a1.len(), b1.len()), (800, 200));
    assert!(a1 == a2 && b1 == b2, "same seed gave different splits");
    assert!(a1 != a3, "different seeds gave the same split");
    assert_eq!(a1.image_shape(), data.image_shape());
}

#[test]
fn class_balanced_subset_is_deterministic_and_balanced() {
    let data = test_set();
    let a = data.class_balanced_subset(20, 1).unwrap();
    assert_eq!(a.class_counts(), vec![20; 10]);
    assert!(a == data.class_balanced_subset(20, 1).unwrap());
    assert!(a != data.class_balanced_subset(20, 2).unwrap());
    assert!(matches!(
        data.class_balanced_subset(101, 1),
        Err(DataError::NotEnoughItems {
            wanted: 101,
            available: 100,
            ..
        })
    ));
}

#[test]
fn batch_has_shape_values_and_labels() {
    let data = test_set();
    let norm = Normalization::fashion_mnist();
    let device = Device::flex();
    let (images, labels) = data.batch(&[5, 0, 999], &norm, &device).unwrap();
    assert_eq!(images.dims(), [3, 1, 28, 28]);
    assert_eq!(labels.dims(), [3]);
    let expected_labels: Vec<i64> = [5, 0, 999]
        .iter()
        .map(|&i| data.labels()[i] as i64)
        .collect();
    assert_eq!(ints(labels), expected_labels);
    let values = floats(images);
    for (k, &i) in [5usize, 0, 999].iter().enumerate() {
        for (j, &p) in data.image(i).iter().enumerate().step_by(37) {
            let want = (p as f32 / 255.0 - 0.2860) / 0.3530;
            assert!((values[k * 784 + j] - want).abs() < 1e-5);
        }
    }
}

#[test]
fn batch_rejects_bad_input() {
    let data = test_set();
    let device = Device::flex();
    let norm = Normalization::fashion_mnist();
    assert!(matches!(
        data.batch(&[0, 1000], &norm, &device),
        Err(DataError::IndexOutOfRange {
            index: 1000,
            len: 1000
        })
    ));
    assert!(data.batch(&[], &norm, &device).is_err());
    assert!(
        data.batch(&[0], &Normalization::cifar10(), &device)
            .is_err()
    );
    assert!(Batches::new(&data, 0, &norm, &device).is_err());
}

#[test]
fn fitted_normalisation_centres_the_data() {
    let data = test_set();
    let norm = Normalization::fit(&data);
    let all: Vec<usize> = (0..data.len()).collect();
    let (images, _) = data.batch(&all, &norm, &Device::flex()).unwrap();
    let values = floats(images);
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 1e-4, "mean {mean}");
    assert!((var.sqrt() - 1.0).abs() < 1e-4, "std {}", var.sqrt());
}

#[test]
fn batches_cover_the_epoch() {
    let data = test_set();
    let norm = Normalization::fashion_mnist();
    let device = Device::flex();

    let batches = Batches::new(&data, 300, &norm, &device).unwrap();
    assert_eq!(batches.len(), 4);
    let sizes: Vec<usize> = batches
        .map(|(x, y)| {
            assert_eq!(x.dims()[1..], [1, 28, 28]);
            y.dims()[0]
        })
        .collect();
    assert_eq!(sizes, vec![300, 300, 300, 100]);

    let dropped = Batches::new(&data, 300, &norm, &device)
        .unwrap()
        .drop_last(true);
    assert_eq!(dropped.count(), 3);

    // In file order the labels come out unchanged.
    let labels: Vec<i64> = Batches::new(&data, 128, &norm, &device)
        .unwrap()
        .flat_map(|(_, y)| ints(y))
        .collect();
    let expected: Vec<i64> = data.labels().iter().map(|&l| l as i64).collect();
    assert_eq!(labels, expected);
}

#[test]
fn shuffle_depends_on_seed_and_epoch() {
    let data = test_set();
    let norm = Normalization::fashion_mnist();
    let device = Device::flex();
    let order = |seed, epoch| {
        Batches::new(&data, 64, &norm, &device)
            .unwrap()
            .shuffle(seed, epoch)
            .order()
            .to_vec()
    };
    let a = order(3, 0);
    assert_eq!(a, order(3, 0));
    assert_ne!(a, order(3, 1));
    assert_ne!(a, order(4, 0));
    assert_eq!(
        order(3, 1),
        order(4, 0),
        "the seed of an epoch is seed + epoch"
    );
    let mut sorted = a.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..data.len()).collect::<Vec<_>>());

    // The labels of the shuffled batches follow the order.
    let first: Vec<i64> = Batches::new(&data, 64, &norm, &device)
        .unwrap()
        .shuffle(3, 0)
        .next()
        .map(|(_, y)| ints(y))
        .unwrap();
    let want: Vec<i64> = a[..64].iter().map(|&i| data.labels()[i] as i64).collect();
    assert_eq!(first, want);
}
