//! The race on a tiny real setup (a seeded random `resnet20-mini`, 40 validation images, two
//! seeds, small budgets): every method is charged exactly the distinct plans it asked for, at
//! most its budget, and no method's best beats the reference.

use burn::prelude::*;
use coinfer_automl::agent::DdpgConfig;
use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::data::{TrainTest, embedded};
use coinfer_automl::profile::{ComputeProfile, LinkProfile};
use coinfer_automl::race::{RaceConfig, RaceMethod};
use coinfer_automl::split::{Network, zoo};
use coinfer_automl::{CoInference, Reward, SearchConfig};

#[test]
fn every_method_spends_at_most_its_budget_and_none_beats_the_reference() {
    let device = Device::flex();
    // The only test of this binary: seeding burn's process-wide generator here is race-free.
    device.seed(29);
    let model = Network::new(zoo::resnet20_mini(10), &device).unwrap();
    let full = embedded::fashion_mnist_subset().unwrap();
    let data = TrainTest {
        train: full.train.class_balanced_subset(20, 1).unwrap(),
        test: full.test.class_balanced_subset(4, 1).unwrap(),
    };
    let reward = Reward::ErrorLogLatency;
    let mut codecs = CodecSetup::fixed_only();
    // Keep the input family small: the race is about the space, not the image codecs.
    codecs.input_png = false;
    codecs.input_jpeg_qualities.clear();
    codecs.input_webp_qualities.clear();
    codecs.input_webp_lossless = false;
    codecs.input_entropy = false;
    let search = CoInference::builder()
        .model(model)
        .data(data)
        .device(ComputeProfile::analytic(1e9, 50e-6).unwrap())
        .link(LinkProfile::new(1e6, 0.0, 0).unwrap())
        .edge(ComputeProfile::analytic(5e9, 30e-6).unwrap())
        .reward(reward)
        .config(SearchConfig {
            ddpg: DdpgConfig {
                hidden: vec![32, 32],
                warmup_episodes: 3,
                batch_size: 8,
                seed: 3,
                ..DdpgConfig::default()
            },
            validation_images: 40,
            calibration_images: 16,
            codecs,
            ..SearchConfig::default()
        })
        .backend(device)
        .build()
        .unwrap();
    let budgets = [6, 12];
    let config = RaceConfig {
        budgets: budgets.to_vec(),
        seeds: 2,
        reference_factor: 3,
        // The refinement's extra starts are charged like every other plan.
        refine_unpruned_starts: true,
        ..RaceConfig::default()
    }
    .check()
    .unwrap();
    let report = search.race(&config).unwrap();

    // The space is the large one of the issue: ≥ 10 split points, ≥ 10^6 grid plans.
    assert!(report.space.splits >= 10, "{:?}", report.space);
    assert_eq!(report.space.prunable_layers, 9);
    assert!(report.space.grid_plans >= 1_000_000, "{:?}", report.space);

    // Every method, budget and seed ran once.
    assert_eq!(
        report.runs.len(),
        RaceMethod::ALL.len() * budgets.len() * 2,
        "{:#?}",
        report.runs
    );
    for run in &report.runs {
        assert!(
            run.evaluations <= run.budget,
            "{} spent {} of {}",
            run.method,
            run.evaluations,
            run.budget
        );
        // Random search, CMA-ES and the grid never stop early in this space: exactly the
        // budget.
        if ["random", "cma-es", "uniform-grid"].contains(&run.method.as_str()) {
            assert_eq!(run.evaluations, run.budget, "{run:?}");
        }
        assert!(
            run.reward <= report.reference.reward,
            "{} found {} above the reference {}",
            run.method,
            run.reward,
            report.reference.reward
        );
        assert!(run.gap >= 0.0, "{run:?}");
    }
    // The reference search holds at least reference_factor × the largest budget plans.
    assert!(
        report.reference.evaluations >= 3 * 12,
        "{:?}",
        report.reference
    );
    // A larger budget never finds a worse plan for the anytime methods (nested prefixes).
    for method in ["ddpg", "random", "cma-es"] {
        for seed in &report.seeds {
            let at = |b: usize| {
                report
                    .runs
                    .iter()
                    .find(|r| r.method == method && r.seed == *seed && r.budget == b)
                    .unwrap()
                    .reward
            };
            assert!(at(12) >= at(6), "{method} seed {seed}");
        }
    }
    assert_eq!(report.summary.len(), RaceMethod::ALL.len() * budgets.len());
}
