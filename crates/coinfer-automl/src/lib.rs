//! Device–edge co-inference AutoML: find the split point, the per-layer pruning of the
//! device blocks and the feature codec that give the best accuracy/latency trade-off, with a
//! DDPG agent (AMC-style), then deploy the chosen [`SplitPlan`].
//!
//! This crate is the facade: it re-exports what users need from the sub-crates and holds the
//! glue — the search space, the plan evaluator, the co-inference environment, the baselines,
//! fine-tuning and the builder.
//!
//! # Quick start
//!
//! The whole main job — what `coinfer search` runs — from a program (this is
//! `examples/embed_search.rs`, shortened):
//!
//! ```no_run
//! use coinfer_automl::prelude::*;
//!
//! let report = CoInference::builder()
//!     .train_backbone("resnet-mini", Budget::Epochs(8))  // or .model(Network::load(..)?)
//!     .data(embedded::fashion_mnist_subset()?)
//!     .device("device-mcu".parse::<ComputeSource>()?)     // a preset or a JSON file
//!     .link("link-802154".parse::<LinkSource>()?)
//!     .edge("edge-gateway".parse::<ComputeSource>()?)
//!     .reward("within-tolerance:1".parse::<Reward>()?)    // one accuracy point
//!     .output("results/embedded")                         // staged, then published
//!     .build()?                                           // checks, trains, profiles
//!     .search()?;                                         // codecs, DDPG, baselines, fine-tune
//! println!("{}", report.to_markdown());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A backbone trained elsewhere is checked against the validation images: the networks the
//! pipeline trains record the images they saw ([`split::TrainedOn`]), and a search re-splits
//! (or, with [`OverlapPolicy::Refuse`], refuses) rather than score plans on memorised images.
//! Progress reaches the caller through an [`Observer`].
//!
//! # Crate map
//!
//! | re-export | crate | what |
//! |---|---|---|
//! | [`data`] | `coinfer-data` | IDX / CIFAR-10 readers, datasets, batching, the embedded subset |
//! | [`split`] | `coinfer-split` | `NetSpec`, burn modules, device/edge split, training, model zoo |
//! | [`runtime`] | `coinfer-runtime` | the device ↔ edge TCP runtime: frames, edge server, device client, link shaping |
//! | [`sparsity`] | `coinfer-sparsity` | L1 filter pruning, magnitude masks |
//! | [`codec`] | `coinfer-codec` | quantizers, autoencoders, payloads |
//! | [`profile`] | `coinfer-profile` | costs, measured timing, profiles, the latency model |
//! | [`agent`] | `coinfer-agent` | DDPG and the `Environment` trait |
//!
//! The glue lives in public modules — [`space`] (the plan space), [`evaluator`] (scoring
//! plans), [`env`] (the agent's environment), [`codecs`] (the codec bank), [`finetune`],
//! [`refine`] (local search after the agent), [`sweep`] (the regime map) and [`plots`] — and
//! in private ones whose items are re-exported at the root: the [`CoInferenceBuilder`]
//! (`builder.rs`) checks a [`SearchConfig`] (`config.rs`), profiles ([`ComputeSource`],
//! [`LinkSource`], `sources.rs`) and a [`Reward`] (`reward.rs`) into a [`CoInference`], whose
//! pipeline (`pipeline.rs`: [`CoInference::search`], [`CoInference::sweep`]) prepares a
//! [`SearchSession`] (`session.rs`: DDPG, [`Baseline`]s, fine-tuning, export; checkpoints in
//! `checkpoint.rs`), writes a [`SearchReport`] (`report.rs`) and a [`SplitPlan`] (`plan.rs`)
//! into a [`RunFolder`] (`output.rs`), and tells an [`Observer`] (`observer.rs`) how far it is.
//!
//! # Features
//! - `flex` (default): burn's CPU backend.
//! - `ndarray`: burn's deprecated NdArray backend.
//! - `wgpu`: GPU through wgpu (long build).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod adaptive;
mod baselines;
mod builder;
mod checkpoint;
pub mod codecs;
mod config;
pub mod env;
mod error;
pub mod evaluator;
pub mod finetune;
pub mod input_codecs;
mod observer;
mod output;
mod pipeline;
mod plan;
pub mod planset;
pub mod plots;
pub mod race;
pub mod rate;
pub mod refine;
mod report;
mod reward;
mod session;
mod sources;
pub mod space;
pub mod sweep;

pub use baselines::{
    Baseline, BaselineResult, BaselineSettings, device_only, exhaustive_grid, random_search,
};
pub use builder::{CoInference, CoInferenceBuilder, OverlapPolicy};
pub use checkpoint::{CheckpointSummary, inspect_checkpoint};
pub use config::{
    CheckedSearchConfig, DEFAULT_CALIBRATION_IMAGES, DEFAULT_SEED, DEFAULT_VALIDATION_IMAGES,
    RERANK_SLACK, SearchConfig, split_validation,
};
pub use error::AutomlError;
pub use observer::{Observer, Phase, Silent};
pub use output::RunFolder;
pub use plan::{DeployedPlan, PlanArtifacts, SplitPlan};
pub use report::{PhaseTimes, Reranked, SearchReport, codec_table, pareto_front};
pub use reward::{DEFAULT_CONFIDENCE, DEFAULT_TOLERANCE, Reward};
pub use session::{DdpgRun, SearchSession};
pub use sources::{Backbone, ComputeSource, LinkSource, compute_presets};

pub use coinfer_agent as agent;
pub use coinfer_codec as codec;
pub use coinfer_data as data;
pub use coinfer_kernels as kernels;
pub use coinfer_profile as profile;
pub use coinfer_runtime as runtime;
pub use coinfer_sparsity as sparsity;
pub use coinfer_split as split;

/// A glob import of the types most programs need (`use coinfer_automl::prelude::*`): it
/// re-exports items whose home is the crate root or a sub-crate and defines nothing of its own.
pub mod prelude {
    pub use crate::codecs::CodecSetup;
    pub use crate::{
        AutomlError, CoInference, ComputeSource, LinkSource, Reward, SearchConfig, SearchReport,
        SplitPlan,
    };
    pub use burn::prelude::Device;
    pub use coinfer_codec::CodecId;
    pub use coinfer_data::{Budget, Normalization, TrainTest, embedded};
    pub use coinfer_profile::{Breakdown, ComputeProfile, LatencyModel, LinkProfile};
    pub use coinfer_split::{Network, zoo};
}
