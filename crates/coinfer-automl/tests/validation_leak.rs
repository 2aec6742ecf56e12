//! A search never scores plans on images its backbone was trained on: a backbone trained on
//! another split of the same data is re-split (and the report says so) or refused, a backbone
//! without a training record is accepted with a warning.

use burn::prelude::*;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::{Budget, ImageDataset, TrainTest, embedded};
use coinfer_automl::profile::{ComputeProfile, LinkProfile};
use coinfer_automl::split::{Network, zoo};
use coinfer_automl::{AutomlError, CoInference, CoInferenceBuilder, OverlapPolicy, SearchConfig};

fn small_data() -> TrainTest {
    let full = embedded::fashion_mnist_subset().unwrap();
    TrainTest {
        train: full.train.class_balanced_subset(30, 1).unwrap(),
        test: full.test.class_balanced_subset(5, 1).unwrap(),
    }
}

fn builder(seed: u64) -> CoInferenceBuilder {
    let config = SearchConfig {
        episodes: 2,
        validation_images: 60,
        seed,
        codecs: CodecSetup::fixed_only(),
        baselines: false,
        ..SearchConfig::default()
    };
    CoInference::builder()
        .data(small_data())
        .data_label("small")
        .device(ComputeProfile::analytic(1e9, 1e-5).unwrap())
        .link(LinkProfile::new(1e6, 0.01, 40).unwrap())
        .edge(ComputeProfile::analytic(1e12, 1e-5).unwrap())
        .config(config)
}

/// How many of `validation`'s images the backbone's record says it trained on.
fn seen(net: &Network, validation: &ImageDataset) -> usize {
    let record = net.trained_on().expect("a trained backbone has a record");
    validation
        .image_digests()
        .into_iter()
        .filter(|&d| record.saw(d))
        .count()
}

#[test]
fn a_backbone_trained_on_another_split_is_re_split_or_refused() {
    // Trained by the pipeline with seed 2: it holds out its own 60 validation images.
    let trained = builder(2)
        .train_backbone("resnet-mini", Budget::Epochs(1))
        .build()
        .unwrap();
    let backbone = trained.model().clone();
    assert_eq!(seen(&backbone, trained.validation()), 0);
    assert!(
        trained.notes()[0].contains("none of them seen"),
        "{:?}",
        trained.notes()
    );

    // Seed 3 draws another validation split: most of it is the backbone's training images.
    let (_, naive) = coinfer_automl::split_validation(&small_data().train, 60, 3).unwrap();
    assert!(seen(&backbone, &naive) > 30, "the naive split overlaps");
    let resplit = builder(3).model(backbone.clone()).build().unwrap();
    assert_eq!(resplit.validation().len(), 60);
    assert_eq!(seen(&backbone, resplit.validation()), 0);
    assert!(
        resplit.notes()[0].contains("re-split"),
        "{:?}",
        resplit.notes()
    );
    let report = resplit.search().unwrap();
    assert!(report.notes[0].contains("re-split"), "{:?}", report.notes);
    assert!(report.to_markdown().contains("re-split"));

    // Refused when asked to.
    let err = builder(3)
        .model(backbone.clone())
        .on_overlap(OverlapPolicy::Refuse)
        .build()
        .err()
        .expect("refused");
    match &err {
        AutomlError::ValidationOverlap {
            overlap,
            validation,
            seed,
            ..
        } => assert!(*overlap > 30 && *validation == 60 && *seed == 2, "{err}"),
        other => panic!("expected a validation overlap, got {other}"),
    }
    assert!(err.to_string().contains("seed 2"), "{err}");

    // Refused when too few images are unseen: 300 images, 240 of them trained on.
    let err = builder(3)
        .config(SearchConfig {
            validation_images: 100,
            seed: 3,
            codecs: CodecSetup::fixed_only(),
            baselines: false,
            ..SearchConfig::default()
        })
        .model(backbone)
        .build()
        .err()
        .expect("refused");
    assert!(
        matches!(err, AutomlError::ValidationOverlap { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("are unseen by the backbone"),
        "{err}"
    );
}

#[test]
fn a_backbone_without_a_record_is_accepted_with_a_warning() {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let search = builder(1).model(net).build().unwrap();
    assert!(
        search.notes()[0].starts_with("warning: the backbone carries no training record"),
        "{:?}",
        search.notes()
    );
}
