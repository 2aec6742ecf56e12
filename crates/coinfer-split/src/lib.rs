//! Network specs, burn modules built from them, and the split into a device half and an edge
//! half.
//!
//! A [`NetSpec`] is plain serde data (ordered blocks: conv-bn-relu, residual basic block,
//! depthwise-separable convolution, MobileNetV2 inverted residual, pooling, flatten, linear)
//! with shape inference and validation. [`Network`] keeps a spec and
//! its burn weights together; [`Network::split`] cuts it at any block boundary so that
//! `edge(device(x))` equals the whole network's output. The [`zoo`] has the default compact
//! ResNet for 28×28 images, ResNet-18 for CIFAR-10 and compact MobileNetV2s for both; [`train`] trains and evaluates them on
//! `coinfer-data` datasets.
//!
//! ```
//! use burn::prelude::*;
//! use coinfer_split::{zoo, Network};
//!
//! let device = Device::flex();
//! let net = Network::new(zoo::resnet_mini(10), &device)?;
//! let (device_half, edge_half) = net.valid().split(2)?;
//! let x = Tensor::<4>::zeros([1, 1, 28, 28], &device);
//! let logits = edge_half.logits(device_half.forward(x)?)?;
//! assert_eq!(logits.dims(), [1, 10]);
//! # Ok::<(), coinfer_split::SplitError>(())
//! ```
//!
//! # Features
//! - `flex` (default): burn's pure-Rust CPU backend, `Device::flex()`.
//! - `ndarray`: burn's deprecated NdArray CPU backend, `Device::ndarray()`.
//! - `wgpu`: GPU through wgpu, `Device::wgpu(..)` (long build; not built by CI's tests).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
pub mod inference;
pub mod model;
mod network;
mod spec;
mod threads;
pub mod train;
pub mod zoo;

pub use error::SplitError;
pub use network::{Network, TrainedOn, fingerprint};
pub use spec::{BlockSpec, FeatureShape, NetSpec};
pub use threads::Threads;
