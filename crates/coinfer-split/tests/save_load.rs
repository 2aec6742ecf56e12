//! Saving a network (spec + weights in one file) and loading it back, and every way that file
//! can be broken.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_split::{Network, SplitError, zoo};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("coinfer-split-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn save_then_load_gives_the_same_outputs_and_digest() {
    let device = Device::flex();
    device.seed(5);
    for spec in [zoo::resnet_mini(10), zoo::mobilenetv2_mini(10)] {
        let net = Network::new(spec, &device).unwrap().valid();
        let dir = temp_dir(&format!("roundtrip-{}", net.spec().name));
        let path = dir.join("net.cfnet");
        net.save(&path).unwrap();
        let loaded = Network::load(&path, &device).unwrap();
        assert_eq!(loaded.spec(), net.spec());
        assert_eq!(loaded.digest(), net.digest());
        let x = Tensor::<4>::random([2, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let a = net.logits(x.clone()).unwrap();
        let b = loaded.valid().logits(x).unwrap();
        assert_eq!(a.into_data(), b.into_data());
        std::fs::remove_dir_all(dir).ok();
    }
}

#[test]
fn digest_changes_when_weights_change() {
    let device = Device::flex();
    device.seed(1);
    let a = Network::new(zoo::resnet_mini(10), &device).unwrap();
    device.seed(2);
    let b = Network::new(zoo::resnet_mini(10), &device).unwrap();
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn halves_save_and_load_independently() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap().valid();
    let (d, e) = net.clone().split(3).unwrap();
    let dir = temp_dir("halves");
    d.save(dir.join("device.cfnet")).unwrap();
    e.save(dir.join("edge.cfnet")).unwrap();
    let d2 = Network::load(dir.join("device.cfnet"), &device).unwrap();
    let e2 = Network::load(dir.join("edge.cfnet"), &device).unwrap();
    let x = Tensor::<4>::random([1, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let whole = net.logits(x.clone()).unwrap();
    let split = e2.logits(d2.forward(x).unwrap()).unwrap();
    assert_eq!(whole.into_data(), split.into_data());
    std::fs::remove_dir_all(dir).ok();
}

fn load_error(bytes: &[u8]) -> SplitError {
    Network::from_bytes(bytes, Path::new("broken.cfnet"), &Device::flex()).unwrap_err()
}

#[test]
fn corrupt_files_give_typed_errors_naming_the_file() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let good = net.to_bytes().unwrap();

    // Truncated.
    let err = load_error(&good[..good.len() / 2]);
    assert!(matches!(err, SplitError::Format { .. }), "{err}");
    assert!(err.to_string().contains("broken.cfnet"), "{err}");

    // Too short to hold a header.
    assert!(matches!(load_error(&good[..10]), SplitError::Format { .. }));

    // Wrong magic.
    let mut bad = good.clone();
    bad[0] = b'X';
    let err = load_error(&bad);
    assert!(err.to_string().contains("magic"), "{err}");

    // A flipped bit in the weights is caught by the checksum.
    let mut bad = good.clone();
    let mid = bad.len() - 100;
    bad[mid] ^= 0x10;
    let err = load_error(&bad);
    assert!(err.to_string().contains("checksum"), "{err}");

    // Missing file.
    let err = Network::load("/nonexistent/dir/net.cfnet", &device).unwrap_err();
    assert!(matches!(err, SplitError::Io { .. }));
    assert!(
        err.to_string().contains("/nonexistent/dir/net.cfnet"),
        "{err}"
    );
}

#[test]
fn weights_of_another_spec_are_rejected() {
    let device = Device::flex();
    let mini = Network::new(zoo::resnet_mini(10), &device).unwrap();
    // Re-label the file with a spec of different widths but keep the weights: shapes mismatch.
    let mut spec = mini.spec().clone();
    let coinfer_split::BlockSpec::ConvBnRelu { out_channels, .. } = &mut spec.blocks[0] else {
        panic!(
            "resnet-mini block 0 is not conv-bn-relu: {:?}",
            spec.blocks[0]
        );
    };
    assert_ne!(*out_channels, 8, "the forged width must differ");
    *out_channels = 8;
    let (_, module) = mini.into_parts();
    let forged = Network::from_parts(spec, module).unwrap();
    let bytes = forged.to_bytes().unwrap();
    let err = load_error(&bytes);
    assert!(matches!(err, SplitError::Weights(_)), "{err}");
}

#[test]
fn the_training_record_is_saved_and_version_1_files_load_without_one() {
    let device = Device::flex();
    let data = coinfer_data::embedded::fashion_mnist_subset()
        .unwrap()
        .train;
    let (held_out, trained) = data.split(0.1, 3).unwrap();
    let record = coinfer_split::TrainedOn::new("subset", &data, &trained, 3, held_out.len());
    let net = Network::new(zoo::resnet_mini(10), &device)
        .unwrap()
        .with_trained_on(record.clone());
    let bytes = net.to_bytes().unwrap();
    let loaded = Network::from_bytes(&bytes, Path::new("rec.cfnet"), &device).unwrap();
    assert_eq!(loaded.trained_on(), Some(&record));
    let digests = trained.image_digests();
    assert!(digests.iter().all(|&d| record.saw(d)));
    let unseen = held_out
        .image_digests()
        .into_iter()
        .filter(|&d| !record.saw(d))
        .count();
    // Fashion-MNIST holds a few duplicate images; nearly every held-out image is unseen.
    assert!(
        unseen + 5 >= held_out.len(),
        "{unseen} of {}",
        held_out.len()
    );

    // A version 1 file: the same bytes without the record section, version 1, new checksum.
    let plain = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let v2 = plain.to_bytes().unwrap();
    let body = &v2[..v2.len() - 4];
    let null_section = 8 + b"null".len();
    let mut v1 = body[..body.len() - null_section].to_vec();
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    let old = Network::from_bytes(&v1, Path::new("v1.cfnet"), &device).unwrap();
    assert!(old.trained_on().is_none());
    assert_eq!(old.digest(), plain.digest());
}
