//! What users name on a command line or in a config: compute and link profiles ("a preset
//! name or a JSON file", [`FromStr`]) and the backbone (a trained network, or a zoo model to
//! train).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use coinfer_profile::preset::{self, compute_preset_names};
use coinfer_profile::{ComputeProfile, LinkProfile, ProfileError, ProfileTable};
use coinfer_split::Network;
use serde::de::DeserializeOwned;

use crate::AutomlError;

/// A compute profile (device or edge) as a user names it, with the name reports show.
///
/// Parsed from a preset name (`device-mcu`, `edge-gpu`, `this-machine`, …; measured presets are
/// resolved against the backbone's block table once it is measured) or a path ending in
/// `.json` (a [`ComputeProfile`] file, read and checked when parsed).
///
/// ```
/// use coinfer_automl::ComputeSource;
///
/// let mcu: ComputeSource = "device-mcu".parse()?;
/// assert_eq!(mcu.name(), "device-mcu");
/// assert!("device-nope".parse::<ComputeSource>().is_err());
/// # Ok::<(), coinfer_automl::AutomlError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ComputeSource {
    name: String,
    profile: Option<ComputeProfile>,
}

impl ComputeSource {
    /// A profile built in code, named `name` in reports.
    pub fn named(name: &str, profile: ComputeProfile) -> Result<ComputeSource, AutomlError> {
        profile.check()?;
        Ok(ComputeSource {
            name: name.to_string(),
            profile: Some(profile),
        })
    }

    /// The name reports show: the preset's name, the file's path, or the given name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the profile needs the backbone's measured block table.
    pub fn needs_table(&self) -> bool {
        self.profile.is_none()
            && matches!(
                preset::compute_preset(&self.name).map(|p| p.profile),
                Ok(preset::PresetModel::Measured { .. })
            )
    }

    /// The profile, with `table` (the backbone's blocks measured on this machine) for the
    /// measured presets.
    pub fn resolve(&self, table: Option<&ProfileTable>) -> Result<ComputeProfile, AutomlError> {
        match &self.profile {
            Some(profile) => Ok(profile.clone()),
            None => Ok(preset::compute_preset(&self.name)?.resolve(table)?),
        }
    }
}

impl From<ComputeProfile> for ComputeSource {
    /// A profile built in code; reports name it by its kind (`analytic`, `measured`, …).
    fn from(profile: ComputeProfile) -> ComputeSource {
        let name = match &profile {
            ComputeProfile::Measured { .. } => "measured".to_string(),
            ComputeProfile::Analytic { flops_per_s, .. } => {
                format!("analytic {:.3} GFLOP/s", flops_per_s / 1e9)
            }
            ComputeProfile::ScaledMeasured { slowdown, .. } => format!("measured ×{slowdown}"),
            ComputeProfile::MeasuredSet { .. } => "measured set".to_string(),
        };
        ComputeSource {
            name,
            profile: Some(profile),
        }
    }
}

impl FromStr for ComputeSource {
    type Err = AutomlError;

    fn from_str(text: &str) -> Result<ComputeSource, AutomlError> {
        if text.ends_with(".json") {
            let profile: ComputeProfile = read_json(Path::new(text))?;
            profile.check().map_err(|e| file_error(text, e))?;
            return Ok(ComputeSource {
                name: text.to_string(),
                profile: Some(profile),
            });
        }
        preset::compute_preset(text)?;
        Ok(ComputeSource {
            name: text.to_string(),
            profile: None,
        })
    }
}

/// A link as a user names it: a preset name (`link-802154`, `link-10mbps`, …) or a path ending
/// in `.json` (a [`LinkProfile`] file). The link carries its name into reports.
///
/// ```
/// use coinfer_automl::LinkSource;
///
/// let link: LinkSource = "link-10mbps".parse()?;
/// assert_eq!(link.profile().name, "link-10mbps");
/// # Ok::<(), coinfer_automl::AutomlError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSource(LinkProfile);

impl LinkSource {
    /// The checked link.
    pub fn profile(&self) -> &LinkProfile {
        &self.0
    }
}

impl From<LinkProfile> for LinkSource {
    /// A link built in code; an unnamed one is named by its rate and RTT.
    fn from(mut link: LinkProfile) -> LinkSource {
        if link.name.is_empty() {
            link.name = format!(
                "{:.0} kbit/s, {:.1} ms RTT",
                link.rate_bps / 1e3,
                link.rtt_s * 1e3
            );
        }
        LinkSource(link)
    }
}

impl FromStr for LinkSource {
    type Err = AutomlError;

    fn from_str(text: &str) -> Result<LinkSource, AutomlError> {
        if text.ends_with(".json") {
            let mut link: LinkProfile = read_json(Path::new(text))?;
            link.check().map_err(|e| file_error(text, e))?;
            if link.name.is_empty() {
                link.name = text.to_string();
            }
            return Ok(LinkSource(link));
        }
        Ok(LinkSource(LinkProfile::preset(text)?))
    }
}

/// Names of every shipped compute preset, for help texts.
pub fn compute_presets() -> Vec<&'static str> {
    compute_preset_names()
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, AutomlError> {
    let text = std::fs::read_to_string(path).map_err(AutomlError::io(path))?;
    serde_json::from_str(&text).map_err(|e| AutomlError::Json {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn file_error(path: &str, e: ProfileError) -> AutomlError {
    AutomlError::Json {
        path: PathBuf::from(path),
        reason: e.to_string(),
    }
}

/// The backbone a search runs on.
#[derive(Debug, Clone)]
pub enum Backbone {
    /// A trained network (its [`TrainedOn`](coinfer_split::TrainedOn) record, when it has
    /// one, is checked against the validation split).
    Trained(Network),
    /// A zoo model (`resnet-mini`, …) to train on the search's training part.
    Train {
        /// The zoo name.
        model: String,
        /// How much of the training part it trains on (above 0).
        budget: coinfer_data::Budget,
        /// A folder to cache the trained network in (reused when the same model, data, seed,
        /// validation split and budget were trained before).
        cache: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_from_preset_names_and_files() {
        let mcu: ComputeSource = "device-mcu".parse().unwrap();
        assert_eq!(mcu.name(), "device-mcu");
        assert!(mcu.resolve(None).is_ok());
        let this: ComputeSource = "this-machine".parse().unwrap();
        assert!(this.needs_table());
        assert!(this.resolve(None).is_err());
        let err = "device-nope".parse::<ComputeSource>().unwrap_err();
        assert!(err.to_string().contains("device-nope"), "{err}");

        let dir = std::env::temp_dir().join(format!("coinfer-sources-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("slow.json");
        let profile = ComputeProfile::analytic(1e8, 1e-5).unwrap();
        std::fs::write(&file, serde_json::to_string(&profile).unwrap()).unwrap();
        let parsed: ComputeSource = file.to_str().unwrap().parse().unwrap();
        assert_eq!(parsed.resolve(None).unwrap(), profile);
        assert_eq!(parsed.name(), file.to_str().unwrap());

        std::fs::write(&file, "{\"type\": \"analytic\"}").unwrap();
        let err = file.to_str().unwrap().parse::<ComputeSource>().unwrap_err();
        assert!(matches!(err, AutomlError::Json { .. }), "{err}");
        let bad = ComputeProfile::Analytic {
            flops_per_s: -1.0,
            per_layer_overhead_s: 0.0,
        };
        std::fs::write(&file, serde_json::to_string(&bad).unwrap()).unwrap();
        let err = file.to_str().unwrap().parse::<ComputeSource>().unwrap_err();
        assert!(err.to_string().contains("slow.json"), "{err}");

        let link: LinkSource = "link-802154".parse().unwrap();
        assert_eq!(link.profile().name, "link-802154");
        let missing = dir.join("none.json");
        let err = missing.to_str().unwrap().parse::<LinkSource>().unwrap_err();
        assert!(matches!(err, AutomlError::Io { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn profiles_built_in_code_get_names() {
        let analytic: ComputeSource = ComputeProfile::analytic(2e9, 0.0).unwrap().into();
        assert_eq!(analytic.name(), "analytic 2.000 GFLOP/s");
        let link: LinkSource = LinkProfile::new(250e3, 0.02, 40).unwrap().into();
        assert_eq!(link.profile().name, "250 kbit/s, 20.0 ms RTT");
    }
}
