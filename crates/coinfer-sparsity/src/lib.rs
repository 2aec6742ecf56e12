//! On-device sparsification for coinfer: structured L1 filter pruning of a [`Network`]'s spec
//! and weights, unstructured magnitude masks, and the analytic costs that show what they save.
//!
//! [`prune`] removes whole filters (the ones with the smallest L1 norm) from the prunable
//! layers ([`prunable_layers`]; the rule is in [`layers`]) together with the input channels
//! that read them, so the pruned network has a smaller spec and really runs faster. Ratios
//! ([`PruneRatios`]) are the fraction of filters removed per layer, validated against the
//! spec once. [`prune_with_recovery`] prunes and then repairs the network without training, on
//! a [`Calibration`] set of training images: batch-norm re-estimation and least-squares
//! reconstruction of the layers that lost input channels ([`PruneRecovery`]).
//! [`magnitude_mask`] zeroes weights without changing shapes. What pruning saves is costed by
//! `coinfer-profile`'s cost model (`NetCost`), the one cost model of the workspace.
//!
//! ```
//! use burn::prelude::*;
//! use coinfer_split::{zoo, Network};
//! use coinfer_profile::NetCost;
//! use coinfer_sparsity::{prune, PruneRatios};
//!
//! let device = Device::flex();
//! let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
//! let pruned = prune(&net, &PruneRatios::Uniform(0.5))?;
//!
//! let macs = |spec| -> Result<u64, coinfer_profile::ProfileError> {
//!     Ok(NetCost::of(spec)?.totals().macs)
//! };
//! let (dense, sparse) = (macs(net.spec())?, macs(pruned.spec())?);
//! assert!(sparse < dense);
//! println!("MACs: {dense} -> {sparse} ({:.0}%)", 100.0 * sparse as f64 / dense as f64);
//!
//! let logits = pruned.logits(Tensor::<4>::zeros([1, 1, 28, 28], &device))?;
//! assert_eq!(logits.dims(), [1, 10]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//! - `flex` (default): burn's pure-Rust CPU backend.
//! - `ndarray`: burn's NdArray CPU backend.
//! - `wgpu`: GPU through wgpu.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod calibrate;
mod check;
mod error;
mod layers;
mod mask;
mod prune;
mod ratios;
pub mod reconstruct;
mod recover;
mod tensors;

pub use calibrate::Calibration;
pub use check::check_weights;
pub use error::SparsityError;
pub use layers::{PrunableKind, PrunableLayer, prunable_layers};
pub use mask::{LayerSparsity, MaskLayer, MaskReport, MaskSparsity, magnitude_mask, mask_layers};
pub use prune::{prune, prune_spec};
pub use ratios::{PruneRatios, kept_channels};
pub use recover::{PruneRecovery, prune_with_recovery};
