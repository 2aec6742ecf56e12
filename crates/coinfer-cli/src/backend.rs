//! `--backend flex|ndarray|wgpu`: the burn backend a command runs on, chosen at run time among
//! those the binary was built with (cargo features `flex`, `ndarray`, `wgpu` of `coinfer-cli`).

use burn::prelude::*;
use clap::ValueEnum;

/// A burn backend the CLI can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// burn's pure-Rust CPU backend (feature `flex`, the default).
    Flex,
    /// burn's NdArray CPU backend (feature `ndarray`, deprecated upstream).
    Ndarray,
    /// A GPU through wgpu (Vulkan, Metal or DX12; feature `wgpu`).
    Wgpu,
}

/// The chosen backend was not compiled into this binary.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "--backend {name}: this coinfer binary was built without the `{name}` feature; rebuild with \
     `cargo build --release -p coinfer-cli --features {name}`"
)]
pub struct BackendNotBuilt {
    /// The backend's name (also the cargo feature).
    pub name: &'static str,
}

impl BackendChoice {
    /// The name on the command line, which is also the cargo feature.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Flex => "flex",
            BackendChoice::Ndarray => "ndarray",
            BackendChoice::Wgpu => "wgpu",
        }
    }

    /// The device to run on, or [`BackendNotBuilt`] when the feature is off.
    pub fn device(self) -> Result<Device, BackendNotBuilt> {
        match self {
            #[cfg(feature = "flex")]
            BackendChoice::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // burn-ndarray is deprecated upstream but still selectable
            BackendChoice::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            BackendChoice::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)] // reachable exactly when a feature is off
            _ => Err(BackendNotBuilt { name: self.name() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_either_gives_a_device_or_names_its_missing_feature() {
        for choice in [
            BackendChoice::Flex,
            BackendChoice::Ndarray,
            BackendChoice::Wgpu,
        ] {
            let built = match choice {
                BackendChoice::Flex => cfg!(feature = "flex"),
                BackendChoice::Ndarray => cfg!(feature = "ndarray"),
                BackendChoice::Wgpu => cfg!(feature = "wgpu"),
            };
            match choice.device() {
                Ok(_) => assert!(built, "{} gave a device without its feature", choice.name()),
                Err(e) => {
                    assert!(!built, "{} is built but failed", choice.name());
                    assert_eq!(e.name, choice.name());
                    assert!(e.to_string().contains("--features"), "{e}");
                }
            }
        }
    }
}
