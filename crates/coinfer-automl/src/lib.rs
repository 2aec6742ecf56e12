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
//! ```no_run
//! use coinfer_automl::prelude::*;
//!
//! let device = Device::flex();
//! let data = embedded::fashion_mnist_subset()?;
//! let backbone = Network::load("results/backbone/resnet-mini-subset.cfnet", &device)?;
//! let report = CoInference::builder()
//!     .model(backbone)
//!     .data(data)
//!     .device(ComputeProfile::preset("device-1gflops", None)?)
//!     .link(LinkProfile::preset("link-10mbps")?)
//!     .edge(ComputeProfile::preset("edge-gpu", None)?)
//!     .reward(Reward::ErrorLogLatency)
//!     .episodes(300)
//!     .build()?
//!     .search()?;
//! println!("split after block {}, codec {}", report.plan.split, report.plan.codec);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
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
//! The glue lives in [`space`], [`evaluator`], [`env`], [`reward`], [`codecs`],
//! [`baselines`], [`finetune`], [`plan`], [`refine`] (local search after the agent) and
//! [`sweep`] (the regime map); the search itself is a [`SearchConfig`]
//! (`config.rs`), checked by the [`CoInferenceBuilder`] (`builder.rs`) into a [`CoInference`],
//! prepared into a [`SearchSession`] (`session.rs`: DDPG, baselines, fine-tuning, export;
//! checkpoints in `checkpoint.rs`) that writes a [`SearchReport`] (`report.rs`).
//!
//! # Features
//! - `flex` (default): burn's CPU backend.
//! - `ndarray`: burn's deprecated NdArray backend.
//! - `wgpu`: GPU through wgpu (long build).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod baselines;
mod builder;
mod checkpoint;
pub mod codecs;
mod config;
pub mod env;
mod error;
pub mod evaluator;
pub mod finetune;
pub mod input_codecs;
pub mod plan;
pub mod rate;
pub mod refine;
pub mod report;
pub mod reward;
mod session;
pub mod space;
pub mod sweep;

pub use baselines::{Baseline, BaselineResult, BaselineSettings};
pub use builder::{CoInference, CoInferenceBuilder};
pub use checkpoint::{CheckpointSummary, inspect_checkpoint};
pub use config::{
    CheckedSearchConfig, DEFAULT_CALIBRATION_IMAGES, DEFAULT_VALIDATION_IMAGES, RERANK_SLACK,
    SearchConfig, split_validation,
};
pub use error::AutomlError;
pub use evaluator::PairedDrop;
pub use plan::{DeployedPlan, PlanArtifacts, SplitPlan};
pub use report::{PhaseTimes, SearchReport};
pub use reward::Reward;
pub use session::{DdpgRun, SearchSession};
pub use sweep::{SweepGrid, SweepReport};

pub use coinfer_agent as agent;
pub use coinfer_codec as codec;
pub use coinfer_data as data;
pub use coinfer_profile as profile;
pub use coinfer_runtime as runtime;
pub use coinfer_sparsity as sparsity;
pub use coinfer_split as split;

/// The types most programs need.
pub mod prelude {
    pub use crate::codecs::CodecSetup;
    pub use crate::{AutomlError, CoInference, Reward, SearchConfig, SearchReport, SplitPlan};
    pub use burn::prelude::Device;
    pub use coinfer_codec::CodecId;
    pub use coinfer_data::{Normalization, TrainTest, embedded};
    pub use coinfer_profile::{Breakdown, ComputeProfile, LatencyModel, LinkProfile};
    pub use coinfer_split::{Network, zoo};
}
