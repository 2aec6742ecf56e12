//! Shipped profiles, loadable by name: JSON files in `crates/coinfer-profile/presets/`, compiled
//! in. `presets/README.md` says where every figure comes from.
//!
//! | name | kind | figures |
//! |---|---|---|
//! | `device-1gflops` | compute | 1 GFLOP/s, 50 µs per block (low-end phone CPU) |
//! | `device-10gflops` | compute | 10 GFLOP/s, 20 µs per block (mid-range phone CPU) |
//! | `edge-gpu` | compute | 1 TFLOP/s, 30 µs per block (edge server GPU) |
//! | `edge-cpu` | compute | 200 GFLOP/s, 10 µs per block (edge server CPU) |
//! | `this-machine` | compute | the table measured on the running backend, slowdown 1 |
//! | `link-1mbps` | link | 1 Mbit/s, 50 ms RTT |
//! | `link-10mbps` | link | 10 Mbit/s, 20 ms RTT |
//! | `link-100mbps` | link | 100 Mbit/s, 5 ms RTT |
//!
//! ```
//! use coinfer_profile::{ComputeProfile, LinkProfile, ProfileError};
//!
//! let phone = ComputeProfile::preset("device-1gflops", None)?;
//! assert_eq!(phone.effective_flops_per_s(), 1e9);
//! let lte = LinkProfile::preset("link-10mbps")?;
//! assert_eq!(lte.rate_bps, 1e7);
//! // `this-machine` needs a table measured with `measure_blocks`.
//! assert!(matches!(
//!     ComputeProfile::preset("this-machine", None),
//!     Err(ProfileError::TableRequired { .. })
//! ));
//! # Ok::<(), ProfileError>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{ProfileError, Result};
use crate::measure::ProfileTable;
use crate::profile::{ComputeProfile, LinkProfile};

/// Compute presets meant for the device.
pub const DEVICE_PRESETS: [&str; 3] = ["device-1gflops", "device-10gflops", "this-machine"];
/// Compute presets meant for the edge server.
pub const EDGE_PRESETS: [&str; 3] = ["edge-gpu", "edge-cpu", "this-machine"];
/// Link presets.
pub const LINK_PRESETS: [&str; 3] = ["link-1mbps", "link-10mbps", "link-100mbps"];

const COMPUTE_FILES: [(&str, &str); 5] = [
    (
        "device-1gflops",
        include_str!("../presets/device-1gflops.json"),
    ),
    (
        "device-10gflops",
        include_str!("../presets/device-10gflops.json"),
    ),
    ("edge-gpu", include_str!("../presets/edge-gpu.json")),
    ("edge-cpu", include_str!("../presets/edge-cpu.json")),
    ("this-machine", include_str!("../presets/this-machine.json")),
];

const LINK_FILES: [(&str, &str); 3] = [
    ("link-1mbps", include_str!("../presets/link-1mbps.json")),
    ("link-10mbps", include_str!("../presets/link-10mbps.json")),
    ("link-100mbps", include_str!("../presets/link-100mbps.json")),
];

/// A compute preset as shipped: a description and either analytic figures or a slowdown to
/// apply to a table measured at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputePreset {
    /// The preset's name.
    pub name: String,
    /// What machine it models and where the figures come from.
    pub description: String,
    /// The figures.
    pub profile: PresetModel,
}

/// The figures of a [`ComputePreset`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PresetModel {
    /// A fixed [`ComputeProfile::Analytic`].
    Analytic {
        /// Effective FLOP/s.
        flops_per_s: f64,
        /// Seconds per block that computes.
        per_layer_overhead_s: f64,
    },
    /// A [`ComputeProfile::ScaledMeasured`] of a table measured at run time.
    Measured {
        /// Time on the modelled machine / time on the measuring machine.
        slowdown: f64,
    },
}

impl ComputePreset {
    /// The profile: analytic figures as they are; a measured preset scales `table` (required).
    pub fn resolve(&self, table: Option<&ProfileTable>) -> Result<ComputeProfile> {
        match (&self.profile, table) {
            (
                PresetModel::Analytic {
                    flops_per_s,
                    per_layer_overhead_s,
                },
                _,
            ) => ComputeProfile::analytic(*flops_per_s, *per_layer_overhead_s),
            (PresetModel::Measured { slowdown }, Some(table)) => {
                ComputeProfile::scaled(table.clone(), *slowdown)
            }
            (PresetModel::Measured { .. }, None) => Err(ProfileError::TableRequired {
                preset: self.name.clone(),
            }),
        }
    }
}

fn unknown(kind: &'static str, name: &str, names: &[&str]) -> ProfileError {
    ProfileError::UnknownPreset {
        kind,
        name: name.to_string(),
        known: names.join(", "),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(name: &str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|source| ProfileError::Json {
        origin: format!("preset {name}"),
        source,
    })
}

/// The compute preset called `name`.
pub fn compute_preset(name: &str) -> Result<ComputePreset> {
    let (_, json) = COMPUTE_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| unknown("compute", name, &compute_preset_names()))?;
    parse(name, json)
}

/// The link preset called `name`, validated.
pub fn link_preset(name: &str) -> Result<LinkProfile> {
    let (_, json) = LINK_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| unknown("link", name, &LINK_PRESETS))?;
    let link: LinkProfile = parse(name, json)?;
    link.check().map_err(|e| e.within(name))?;
    Ok(link)
}

/// Names of every shipped compute preset (device and edge).
pub fn compute_preset_names() -> Vec<&'static str> {
    COMPUTE_FILES.iter().map(|(n, _)| *n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tests::synthetic_table;
    use coinfer_split::zoo;

    #[test]
    fn every_compute_preset_parses_validates_and_is_named_after_its_file() {
        let table = synthetic_table(&zoo::resnet_mini(10));
        for name in compute_preset_names() {
            let preset = compute_preset(name).unwrap();
            assert_eq!(preset.name, name);
            assert!(!preset.description.is_empty(), "{name}");
            preset.resolve(Some(&table)).unwrap().check().unwrap();
        }
        for name in DEVICE_PRESETS.iter().chain(&EDGE_PRESETS) {
            assert!(compute_preset_names().contains(name), "{name}");
        }
    }

    #[test]
    fn every_link_preset_parses_and_validates() {
        for name in LINK_PRESETS {
            let link = link_preset(name).unwrap();
            assert_eq!(link.name, name);
            assert!(!link.description.is_empty(), "{name}");
        }
        let rates: Vec<f64> = LINK_PRESETS
            .iter()
            .map(|n| link_preset(n).unwrap().rate_bps)
            .collect();
        assert_eq!(rates, [1e6, 1e7, 1e8]);
    }

    #[test]
    fn paper_regime_figures() {
        let rate = |name| {
            compute_preset(name)
                .unwrap()
                .resolve(None)
                .unwrap()
                .effective_flops_per_s()
        };
        assert_eq!(rate("device-1gflops"), 1e9);
        assert_eq!(rate("device-10gflops"), 1e10);
        assert!(rate("edge-gpu") > rate("edge-cpu"));
    }

    #[test]
    fn this_machine_is_the_measured_table_unscaled() {
        let table = synthetic_table(&zoo::resnet_mini(10));
        match ComputeProfile::preset("this-machine", Some(&table)).unwrap() {
            ComputeProfile::ScaledMeasured { table: t, slowdown } => {
                assert_eq!(slowdown, 1.0);
                assert_eq!(t, table);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            ComputeProfile::preset("this-machine", None),
            Err(ProfileError::TableRequired { .. })
        ));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = compute_preset("device-9000").unwrap_err();
        assert!(err.to_string().contains("device-1gflops"), "{err}");
        let err = link_preset("link-56k").unwrap_err();
        assert!(
            matches!(err, ProfileError::UnknownPreset { kind: "link", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("link-10mbps"), "{err}");
    }
}
