//! [`CoInferenceBuilder`]: how users describe a search (model, data, profiles, reward,
//! settings), checked once into a [`CoInference`].

use burn::prelude::*;
use coinfer_data::{Normalization, TrainTest};
use coinfer_profile::{ComputeProfile, LatencyModel, LinkProfile};
use coinfer_split::Network;

use crate::AutomlError;
use crate::config::{CheckedSearchConfig, SearchConfig};
use crate::reward::Reward;

/// Builds a [`CoInference`] search; see the crate docs for the ten-line version.
#[derive(Default)]
pub struct CoInferenceBuilder {
    model: Option<Network>,
    data: Option<TrainTest>,
    normalization: Option<Normalization>,
    device: Option<ComputeProfile>,
    link: Option<LinkProfile>,
    edge: Option<ComputeProfile>,
    reward: Reward,
    config: SearchConfig,
    backend: Option<Device>,
    names: [String; 3],
}

impl CoInferenceBuilder {
    /// The trained backbone (a whole classifier).
    pub fn model(mut self, model: Network) -> Self {
        self.model = Some(model);
        self
    }

    /// Training and test data (validation images are split off the training set).
    pub fn data(mut self, data: TrainTest) -> Self {
        self.data = Some(data);
        self
    }

    /// Input normalisation (default: fitted on the training set).
    pub fn normalization(mut self, norm: Normalization) -> Self {
        self.normalization = Some(norm);
        self
    }

    /// The device's compute profile.
    pub fn device(mut self, profile: ComputeProfile) -> Self {
        self.device = Some(profile);
        self
    }

    /// The wireless link.
    pub fn link(mut self, link: LinkProfile) -> Self {
        self.link = Some(link);
        self
    }

    /// The edge server's compute profile.
    pub fn edge(mut self, profile: ComputeProfile) -> Self {
        self.edge = Some(profile);
        self
    }

    /// Names of the device, link and edge profiles, recorded in the plan.
    pub fn profile_names(mut self, device: &str, link: &str, edge: &str) -> Self {
        self.names = [device.into(), link.into(), edge.into()];
        self
    }

    /// The reward (default: `-error · ln T`).
    pub fn reward(mut self, reward: Reward) -> Self {
        self.reward = reward;
        self
    }

    /// Number of DDPG episodes.
    pub fn episodes(mut self, episodes: usize) -> Self {
        self.config.episodes = episodes;
        self
    }

    /// Every other setting at once.
    pub fn config(mut self, config: SearchConfig) -> Self {
        self.config = config;
        self
    }

    /// The burn device models run on (default `Device::flex()`).
    pub fn backend(mut self, device: Device) -> Self {
        self.backend = Some(device);
        self
    }

    /// Checks everything and builds the search.
    pub fn build(self) -> Result<CoInference, AutomlError> {
        let model = self.model.ok_or(AutomlError::Missing("model"))?;
        let data = self.data.ok_or(AutomlError::Missing("data"))?;
        let device = self.device.ok_or(AutomlError::Missing("device"))?;
        let link = self.link.ok_or(AutomlError::Missing("link"))?;
        let edge = self.edge.ok_or(AutomlError::Missing("edge"))?;
        let config = self.config.check()?;
        self.reward.check()?;
        model.spec().check()?;
        let latency = LatencyModel::new(device, link, edge)?;
        let norm = self
            .normalization
            .unwrap_or_else(|| Normalization::fit(&data.train));
        if data.train.len() <= config.validation_images {
            return Err(AutomlError::InvalidConfig {
                field: "validation_images",
                reason: format!(
                    "{} validation images leave nothing of a {}-image training set",
                    config.validation_images,
                    data.train.len()
                ),
            });
        }
        Ok(CoInference {
            model: model.valid(),
            data,
            norm,
            latency,
            reward: self.reward,
            config,
            backend: self.backend.unwrap_or_else(Device::flex),
            names: self.names,
        })
    }
}

/// A configured co-inference search.
///
/// A small, complete run (random backbone, fixed codecs, a handful of episodes — a real search
/// uses a trained backbone, the default [`SearchConfig`] and a few hundred episodes):
///
/// ```
/// use coinfer_automl::codecs::CodecSetup;
/// use coinfer_automl::prelude::*;
///
/// let device = Device::flex();
/// let full = embedded::fashion_mnist_subset()?;
/// let data = TrainTest {
///     train: full.train.class_balanced_subset(20, 1)?,
///     test: full.test.class_balanced_subset(5, 1)?,
/// };
/// let mut config = SearchConfig {
///     episodes: 4,
///     validation_images: 40,
///     codecs: CodecSetup::fixed_only(),
///     ..SearchConfig::default()
/// };
/// config.ddpg.warmup_episodes = 2;
/// let report = CoInference::builder()
///     .model(Network::new(zoo::resnet_mini(10), &device)?)
///     .data(data)
///     .device(ComputeProfile::analytic(2e9, 20e-6)?)
///     .link(LinkProfile::new(10e6, 0.010, 40)?)
///     .edge(ComputeProfile::analytic(1e12, 50e-6)?)
///     .reward(Reward::ErrorLogLatency)
///     .config(config)
///     .build()?
///     .search()?;
/// assert_eq!(report.episodes.len(), 4);
/// assert!(report.plan.predicted.total > 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CoInference {
    pub(crate) model: Network,
    pub(crate) data: TrainTest,
    pub(crate) norm: Normalization,
    pub(crate) latency: LatencyModel,
    pub(crate) reward: Reward,
    pub(crate) config: CheckedSearchConfig,
    pub(crate) backend: Device,
    pub(crate) names: [String; 3],
}

impl CoInference {
    /// Starts building a search.
    pub fn builder() -> CoInferenceBuilder {
        CoInferenceBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &SearchConfig {
        &self.config
    }

    /// The reward.
    pub fn reward(&self) -> Reward {
        self.reward
    }
}
