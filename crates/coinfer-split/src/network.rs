//! [`Network`]: a spec and its weights kept together, split into device and edge halves, saved
//! to and loaded from one file.

use std::path::Path;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;

use crate::SplitError;
use crate::model::NetModule;
use crate::spec::NetSpec;
use serde::{Deserialize, Serialize};

/// Magic bytes at the start of a saved network file.
const FILE_MAGIC: &[u8; 8] = b"COINFNET";
/// Version of the saved network file layout: 2 adds the training record after the weights;
/// version 1 files (no record) still load.
const FILE_VERSION: u32 = 2;

/// A network spec together with the burn module built from it.
///
/// This is the unit the whole pipeline works on: a whole classifier, or the device or edge half
/// of one after [`split`](Self::split).
///
/// ```
/// use burn::prelude::*;
/// use coinfer_split::{zoo, Network};
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?.valid();
/// let x = Tensor::<4>::ones([2, 1, 28, 28], &device);
/// let whole = net.forward(x.clone())?;
///
/// let (device_half, edge_half) = net.split(3)?;
/// let feature = device_half.forward(x)?;          // runs on the device
/// let logits = edge_half.forward(feature)?;       // runs on the edge server
/// whole.into_data().assert_approx_eq::<f32>(&logits.into_data(), burn::tensor::Tolerance::absolute(1e-5));
/// # Ok::<(), coinfer_split::SplitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Network {
    spec: NetSpec,
    module: NetModule,
    trained_on: Option<TrainedOn>,
}

/// What a network was trained on, saved with it: the data, the validation split that was held
/// out, and a fingerprint of every training image. A search checks its validation images
/// against it, so plans are never scored on images the backbone has memorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainedOn {
    /// The data set's label (e.g. `fashion-mnist-subset`).
    pub data: String,
    /// [`ImageDataset::digest`](coinfer_data::ImageDataset::digest) of the whole training
    /// set the validation images were split off.
    pub data_digest: String,
    /// Seed of that validation split.
    pub seed: u64,
    /// Validation images held out of training.
    pub validation_images: usize,
    /// [`ImageDataset::image_digests`](coinfer_data::ImageDataset::image_digests) of the
    /// images trained on, sorted and deduplicated.
    pub image_digests: Vec<u64>,
}

impl TrainedOn {
    /// The record of training on `trained`, the part of `data` (labelled `label`) left after
    /// holding out `validation_images` images drawn by `seed`.
    pub fn new(
        label: &str,
        data: &coinfer_data::ImageDataset,
        trained: &coinfer_data::ImageDataset,
        seed: u64,
        validation_images: usize,
    ) -> TrainedOn {
        let mut image_digests = trained.image_digests();
        image_digests.sort_unstable();
        image_digests.dedup();
        TrainedOn {
            data: label.to_string(),
            data_digest: data.digest(),
            seed,
            validation_images,
            image_digests,
        }
    }

    /// Whether an image with this [digest](coinfer_data::ImageDataset::image_digests) was
    /// trained on.
    pub fn saw(&self, digest: u64) -> bool {
        self.image_digests.binary_search(&digest).is_ok()
    }
}

impl Network {
    /// Validates `spec` and builds it with freshly initialised weights on `device`.
    pub fn new(spec: NetSpec, device: &Device) -> Result<Network, SplitError> {
        spec.shapes()?;
        let module = NetModule::from_spec(&spec, device)?;
        Ok(Network {
            spec,
            module,
            trained_on: None,
        })
    }

    /// Joins a spec and a module that was built from it (e.g. after training or pruning).
    ///
    /// Fails if the module's block count differs from the spec's; parameter shapes are the
    /// builder's responsibility and are checked when weights are loaded.
    pub fn from_parts(spec: NetSpec, module: NetModule) -> Result<Network, SplitError> {
        spec.shapes()?;
        if spec.blocks.len() != module.blocks.len() {
            return Err(SplitError::Weights(format!(
                "the spec has {} blocks but the module has {}",
                spec.blocks.len(),
                module.blocks.len()
            )));
        }
        Ok(Network {
            spec,
            module,
            trained_on: None,
        })
    }

    /// The network's spec.
    pub fn spec(&self) -> &NetSpec {
        &self.spec
    }

    /// What the network was trained on, when it was recorded ([`with_trained_on`]
    /// (Self::with_trained_on); networks saved before the record existed have none).
    pub fn trained_on(&self) -> Option<&TrainedOn> {
        self.trained_on.as_ref()
    }

    /// The network with its training record (saved with it).
    pub fn with_trained_on(mut self, record: TrainedOn) -> Network {
        self.trained_on = Some(record);
        self
    }

    /// The burn module.
    pub fn module(&self) -> &NetModule {
        &self.module
    }

    /// Splits into the spec and the module.
    pub fn into_parts(self) -> (NetSpec, NetModule) {
        (self.spec, self.module)
    }

    /// An inference copy: no autodiff, batch norm uses its running statistics.
    pub fn valid(&self) -> Network {
        Network {
            spec: self.spec.clone(),
            module: self.module.valid(),
            trained_on: self.trained_on.clone(),
        }
    }

    /// Moves the weights to `device`.
    pub fn to_device(self, device: &Device) -> Network {
        Network {
            spec: self.spec,
            module: self.module.to_device(device),
            trained_on: self.trained_on,
        }
    }

    /// Runs every block on `x` (`[B, C, H, W]` of the spec's input shape) and returns the last
    /// activation: the split feature for a device half, `[B, classes, 1, 1]` logits for a
    /// network that ends in its classifier. An empty half returns `x` unchanged.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>, SplitError> {
        self.check_input(&x)?;
        Ok(self.module.forward_features(x))
    }

    /// Runs a network that ends in its classifier and returns `[B, classes]` logits.
    pub fn logits(&self, x: Tensor<4>) -> Result<Tensor<2>, SplitError> {
        into_logits(self.forward(x)?)
    }

    fn check_input(&self, x: &Tensor<4>) -> Result<(), SplitError> {
        check_input(&self.spec, x)
    }

    /// Cuts after `at` blocks into `(device half, edge half)`; `at = 0` gives an empty device
    /// half (edge only), `at = blocks` an empty edge half (device only). The halves share
    /// nothing: each can be saved, moved and run on its own.
    pub fn split(self, at: usize) -> Result<(Network, Network), SplitError> {
        let (device_spec, edge_spec) = self.spec.split(at)?;
        let (device_module, edge_module) = self.module.split_at(at);
        Ok((
            Network {
                spec: device_spec,
                module: device_module,
                trained_on: None,
            },
            Network {
                spec: edge_spec,
                module: edge_module,
                trained_on: None,
            },
        ))
    }

    /// Joins a device half and an edge half back into one network (the inverse of
    /// [`split`](Self::split)); fails if the edge half does not start on the device half's
    /// output shape.
    pub fn join(device: Network, edge: Network) -> Result<Network, SplitError> {
        let device_out = *device
            .spec
            .shapes()?
            .last()
            .expect("shapes holds the input");
        if device_out != edge.spec.input {
            return Err(SplitError::Weights(format!(
                "the edge half expects {:?} but the device half produces {:?}",
                edge.spec.input, device_out
            )));
        }
        let mut blocks = device.spec.blocks;
        blocks.extend(edge.spec.blocks);
        let mut modules = device.module.blocks;
        modules.extend(edge.module.blocks);
        let name = device
            .spec
            .name
            .split('[')
            .next()
            .unwrap_or_default()
            .to_string();
        Network::from_parts(
            NetSpec {
                name,
                input: device.spec.input,
                blocks,
            },
            NetModule { blocks: modules },
        )
    }

    /// Serialises spec and weights into one byte buffer (see [`save`](Self::save)).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SplitError> {
        let spec = serde_json::to_vec(&self.spec)
            .map_err(|e| SplitError::Weights(format!("spec serialisation: {e}")))?;
        let weights = self
            .module
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| SplitError::Weights(e.to_string()))?;
        let mut out = Vec::with_capacity(32 + spec.len() + weights.len());
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&FILE_VERSION.to_le_bytes());
        out.extend_from_slice(&(spec.len() as u64).to_le_bytes());
        out.extend_from_slice(&spec);
        out.extend_from_slice(&(weights.len() as u64).to_le_bytes());
        out.extend_from_slice(&weights);
        let record = serde_json::to_vec(&self.trained_on)
            .map_err(|e| SplitError::Weights(format!("training record serialisation: {e}")))?;
        out.extend_from_slice(&(record.len() as u64).to_le_bytes());
        out.extend_from_slice(&record);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote; `origin` names the source in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path, device: &Device) -> Result<Network, SplitError> {
        let bad = |reason: String| SplitError::Format {
            path: origin.to_path_buf(),
            reason,
        };
        if bytes.len() < FILE_MAGIC.len() + 4 + 8 + 8 + 4 {
            return Err(bad(format!("file is only {} bytes long", bytes.len())));
        }
        if &bytes[..8] != FILE_MAGIC {
            return Err(bad("wrong magic bytes (not a coinfer network file)".into()));
        }
        let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
        let stored_crc = u32::from_le_bytes(crc_bytes.try_into().expect("4 bytes"));
        if crc32fast::hash(body) != stored_crc {
            return Err(bad(
                "checksum mismatch: the file is corrupt or truncated".into()
            ));
        }
        let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
        if !(1..=FILE_VERSION).contains(&version) {
            return Err(bad(format!(
                "unsupported version {version} (this build reads version {FILE_VERSION})"
            )));
        }
        let mut cursor = 12usize;
        let mut section = |what: &str| -> Result<&[u8], SplitError> {
            let len_end = cursor + 8;
            let len = body
                .get(cursor..len_end)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .ok_or_else(|| bad(format!("truncated before the {what} length")))?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| len_end.checked_add(len))
                .filter(|&end| end <= body.len())
                .ok_or_else(|| bad(format!("{what} section of {len} bytes runs past the end")))?;
            cursor = end;
            Ok(&body[len_end..end])
        };
        let spec_bytes = section("spec")?;
        let spec: NetSpec = serde_json::from_slice(spec_bytes)
            .map_err(|e| bad(format!("spec is not valid JSON: {e}")))?;
        let weights = section("weights")?.to_vec();
        let trained_on: Option<TrainedOn> = if version >= 2 {
            serde_json::from_slice(section("training record")?)
                .map_err(|e| bad(format!("training record is not valid JSON: {e}")))?
        } else {
            None
        };
        if cursor != body.len() {
            return Err(bad(format!("{} trailing bytes", body.len() - cursor)));
        }
        let network = Network::new(spec, device).map_err(|e| bad(format!("invalid spec: {e}")))?;
        let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(weights))
            .map_err(|e| bad(format!("weights: {e}")))?;
        let module = network
            .module
            .try_load_record(record)
            .map_err(|e| SplitError::Weights(format!("{}: {e}", origin.display())))?;
        Ok(Network {
            spec: network.spec,
            module,
            trained_on,
        })
    }

    /// Saves spec and weights to one file: magic, version, spec (JSON), weights (burnpack
    /// record), CRC32.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SplitError> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| SplitError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        // Write then rename, so an interrupted save never leaves a half-written file behind.
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).map_err(|source| SplitError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(|source| SplitError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads a network saved by [`save`](Self::save) onto `device`.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Network, SplitError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| SplitError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Network::from_bytes(&bytes, path, device)
    }

    /// A 64-bit fingerprint of the spec and every parameter value (hex), stable across save and
    /// load: two processes holding the same half agree on it, so it names the weights in a plan.
    pub fn digest(&self) -> String {
        let mut hasher = Fnv64::default();
        hasher.write(&serde_json::to_vec(&self.spec).unwrap_or_default());
        let mut visitor = DigestVisitor {
            hasher: &mut hasher,
        };
        self.module.visit(&mut visitor);
        format!("{:016x}", hasher.0)
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.module.num_params()
    }
}

/// Fails unless `x` is `[B, ..spec.input]`.
pub(crate) fn check_input(spec: &NetSpec, x: &Tensor<4>) -> Result<(), SplitError> {
    let dims = x.dims();
    if dims[1..] != spec.input.dims() {
        return Err(SplitError::InputShape {
            expected: spec.input.dims(),
            got: dims.to_vec(),
        });
    }
    Ok(())
}

/// `[B, classes, 1, 1]` → `[B, classes]`; fails on a feature map that is not a classifier output.
pub(crate) fn into_logits(y: Tensor<4>) -> Result<Tensor<2>, SplitError> {
    let [batch, classes, h, w] = y.dims();
    if h != 1 || w != 1 {
        return Err(SplitError::NoClassifierHead {
            shape: [classes, h, w],
        });
    }
    Ok(y.reshape([batch, classes]))
}

/// A stable 64-bit fingerprint of `bytes` as 16 hex digits (FNV-1a; not a cryptographic
/// hash): what [`Network::digest`] and plan digests are made of.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut hasher = Fnv64::default();
    hasher.write(bytes);
    format!("{:016x}", hasher.0)
}

/// FNV-1a, 64 bit: a stable, dependency-free fingerprint (not a cryptographic hash).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

struct DigestVisitor<'a> {
    hasher: &'a mut Fnv64,
}

impl ModuleVisitor for DigestVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let data = param.val().into_data();
        self.hasher.write(data.as_bytes());
    }
}
