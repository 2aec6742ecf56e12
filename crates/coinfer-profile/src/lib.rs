//! The cost side of coinfer's co-inference search: what each block of a (possibly pruned)
//! network costs, and how long a split plan takes end to end.
//!
//! [`NetCost`] counts MACs, FLOPs, parameters and activation bytes per block of a
//! [`NetSpec`](coinfer_split::NetSpec); [`measure_blocks`] times every block on the running burn
//! backend into a [`ProfileTable`] saved as JSON; [`ComputeProfile`] (device or edge: measured,
//! analytic, or measured-and-scaled) and [`LinkProfile`] describe the machines and the link, with
//! shipped [presets](preset); [`LatencyModel::predict`] turns a [`PlanCost`] (split point,
//! payload bits, codec times) into a [`Breakdown`] of the design's latency formula
//! `T = T_dev + T_enc + bits / R + RTT + T_dec + T_edge`.
//!
//! ```
//! use coinfer_profile::{ComputeProfile, LatencyModel, LinkProfile, NetCost, PlanCost};
//! use coinfer_split::zoo;
//!
//! let model = LatencyModel::new(
//!     ComputeProfile::analytic(1e9, 0.0)?,  // device: 1 GFLOP/s, no per-block overhead
//!     LinkProfile::new(10e6, 0.010, 0)?,    // 10 Mbit/s, 10 ms round trip
//!     ComputeProfile::analytic(1e12, 0.0)?, // edge: 1 TFLOP/s
//! )?;
//! let net = zoo::resnet_mini(10);
//! let cost = NetCost::of(&net)?;
//! // Cut after 3 blocks and send the 64×4×4 feature quantised to 8 bits.
//! let bits = 8 * cost.cut_elements(3)?;
//! let plan = PlanCost { network: &net, split: 3, payload_bits: bits, encode_s: 0.0, decode_s: 0.0 };
//! let t = model.predict(&plan)?;
//!
//! assert_eq!(bits, 8 * 64 * 4 * 4);
//! assert!((t.device - cost.device_part(3)?.flops as f64 / 1e9).abs() < 1e-12);
//! assert!((t.transmit - bits as f64 / 10e6).abs() < 1e-12);
//! assert_eq!(t.rtt, 0.010);
//! assert!((t.total - (t.device + t.transmit + t.rtt + t.edge)).abs() < 1e-12);
//! # Ok::<(), coinfer_profile::ProfileError>(())
//! ```
//!
//! Files: `cost.rs` (analytic counts and their conventions, [`NetCost`]), `measure.rs` (timing
//! on the backend, [`measure_blocks`]), `profile.rs` (compute and link profiles), [`preset`]
//! (shipped profiles; a public namespace), `latency.rs` ([`LatencyModel`]). Every other item
//! is exported at the root.
//!
//! # Features
//! - `flex` (default): burn's pure-Rust CPU backend, `Device::flex()`.
//! - `ndarray`: burn's NdArray CPU backend, `Device::ndarray()`.
//! - `wgpu`: GPU through wgpu (long build).

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cost;
mod error;
mod latency;
mod measure;
pub mod preset;
mod profile;

pub use cost::{BlockCost, CostTotals, FLOAT32_BYTES, NetCost, block_cost};
pub use error::{ProfileError, Result};
pub use latency::{Breakdown, LatencyModel, PlanCost};
pub use measure::{
    BlockTiming, MeasureConfig, ProfileTable, TimingStats, backend_name, measure_blocks,
    measure_forward,
};
pub use profile::{CodecCompute, ComputeProfile, LinkProfile};
