//! Building the codec family of every split point: fixed quantizers, and autoencoders trained
//! for the frozen backbone (design §1, "feature compression").

use burn::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use coinfer_codec::{
    AutoencoderCodec, AutoencoderConfig, CodecFamily, CodecId, EpochReport, MAX_AE_KERNEL,
    TrainBatch, TrainOptions, TrainedAutoencoder, train_autoencoder,
};
use coinfer_data::{Batches, Budget, ImageDataset, Normalization};
use coinfer_split::Network;
use coinfer_split::model::NetModule;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::AutomlError;
use crate::evaluator::{BankCodec, CodecBank};
use crate::input_codecs::{codec_for_input, measure_sample, sized_family};

/// Which codecs each split offers, and how the autoencoders are trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodecSetup {
    /// Offer the uncompressed float32 feature.
    pub float32: bool,
    /// Bit widths of per-tensor uniform quantizers.
    pub quant_bits: Vec<u8>,
    /// Bit widths of per-channel uniform quantizers (not at the raw input).
    pub per_channel_bits: Vec<u8>,
    /// Channel reduction ratios `r` of the autoencoders (empty: no autoencoders).
    pub ae_ratios: Vec<u16>,
    /// Latent bit widths `b` the autoencoders are offered at.
    pub ae_bits: Vec<u8>,
    /// Bit width the autoencoders are trained at (straight-through); the other widths reuse
    /// the weights.
    pub ae_train_bits: u8,
    /// Convolution kernel of encoder and decoder.
    pub ae_kernel: usize,
    /// How much each autoencoder trains: passes over its training images (`epochs:N`) or
    /// images (`images:N`). A config file may still say `"ae_epochs": N`.
    #[serde(alias = "ae_epochs")]
    pub ae_budget: Budget,
    /// Training images the autoencoders draw their batches from (a class-balanced prefix of
    /// the training set; more than the set holds means all of it).
    pub ae_train_images: usize,
    /// Adam learning rate.
    pub ae_lr: f64,
    /// Weight of the reconstruction MSE next to the task loss.
    pub ae_recon_weight: f32,
    /// Training batch size.
    pub ae_batch_size: usize,
    /// Channel ratios of the spatial (BottleNet++-style) autoencoders: a k×k stride-2
    /// encoder with batch norm, an upsampling decoder with batch norm (empty: none).
    pub spatial_ratios: Vec<u16>,
    /// Latent bit widths the spatial autoencoders are offered at.
    pub spatial_bits: Vec<u8>,
    /// Bit width the spatial autoencoders are trained at.
    pub spatial_train_bits: u8,
    /// Kernel of the spatial autoencoders' convolutions.
    pub spatial_kernel: usize,
    /// Adam learning rate of the spatial autoencoders.
    pub spatial_lr: f64,
    /// Weight of the distillation loss (from the unmodified backbone's logits) next to the
    /// task loss, for every autoencoder.
    pub distill_weight: f32,
    /// Also offer each input quantizer (`quant_bits`) rANS entropy-coded (`quant4-ec`).
    pub input_entropy: bool,
    /// Offer the input image as PNG (grey or RGB inputs).
    pub input_png: bool,
    /// Qualities (1..=100) at which the input image is offered as JPEG.
    pub input_jpeg_qualities: Vec<u8>,
    /// Qualities (1..=100) at which the input image is offered as lossy WebP.
    pub input_webp_qualities: Vec<u8>,
    /// Offer the input image as lossless WebP.
    pub input_webp_lossless: bool,
    /// Training images the payloads of content-dependent input codecs (entropy coded, image
    /// files) are measured on, one image per payload.
    pub input_measure_images: usize,
}

/// A [`CodecSetup`] checked by [`CodecSetup::check`] (the only way to make one); reads as a
/// `CodecSetup`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedCodecSetup(CodecSetup);

impl std::ops::Deref for CheckedCodecSetup {
    type Target = CodecSetup;

    fn deref(&self) -> &CodecSetup {
        &self.0
    }
}

impl Default for CodecSetup {
    fn default() -> Self {
        CodecSetup {
            float32: true,
            quant_bits: vec![2, 4, 8],
            per_channel_bits: vec![4],
            ae_ratios: vec![4, 16],
            ae_bits: vec![2, 4, 8],
            ae_train_bits: 4,
            ae_kernel: 1,
            ae_budget: Budget::Epochs(5),
            ae_train_images: 3000,
            ae_lr: 1e-2,
            ae_recon_weight: 0.1,
            ae_batch_size: 64,
            spatial_ratios: vec![8, 16],
            spatial_bits: vec![2, 3],
            spatial_train_bits: 3,
            spatial_kernel: 3,
            spatial_lr: 3e-3,
            distill_weight: 0.5,
            input_entropy: true,
            input_png: true,
            input_jpeg_qualities: vec![50, 75, 90],
            input_webp_qualities: vec![50, 75, 90],
            input_webp_lossless: true,
            input_measure_images: 500,
        }
    }
}

impl CodecSetup {
    /// Only fixed codecs (no training): what tests and quick runs use.
    pub fn fixed_only() -> CodecSetup {
        CodecSetup {
            ae_ratios: Vec::new(),
            spatial_ratios: Vec::new(),
            ..CodecSetup::default()
        }
    }

    /// Checks every field and returns the checked form [`build_codecs`] runs on.
    ///
    /// # Errors
    /// [`AutomlError::InvalidConfig`] naming the first bad field (`codecs.ae_kernel`, ...).
    pub fn check(self) -> Result<CheckedCodecSetup, AutomlError> {
        let bad =
            |field: &'static str, reason: String| Err(AutomlError::InvalidConfig { field, reason });
        let bits_ok = |b: &u8| (1..=8).contains(b);
        if let Some(b) = self
            .quant_bits
            .iter()
            .chain(&self.per_channel_bits)
            .find(|b| !bits_ok(b))
        {
            return bad("codecs.quant_bits", format!("{b} is outside 1..=8"));
        }
        if let Some(b) = self.ae_bits.iter().find(|b| !bits_ok(b)) {
            return bad("codecs.ae_bits", format!("{b} is outside 1..=8"));
        }
        if !self.spatial_ratios.is_empty() {
            if let Some(b) = self
                .spatial_bits
                .iter()
                .chain(std::iter::once(&self.spatial_train_bits))
                .find(|b| !bits_ok(b))
            {
                return bad("codecs.spatial_bits", format!("{b} is outside 1..=8"));
            }
            if self.spatial_bits.is_empty() {
                return bad(
                    "codecs.spatial_bits",
                    "spatial autoencoders need at least one bit width".into(),
                );
            }
            if self.spatial_ratios.contains(&0) {
                return bad("codecs.spatial_ratios", "a ratio must be at least 1".into());
            }
            if self.spatial_kernel.is_multiple_of(2)
                || self.spatial_kernel > usize::from(MAX_AE_KERNEL)
            {
                return bad(
                    "codecs.spatial_kernel",
                    format!(
                        "{} must be odd and at most {MAX_AE_KERNEL}",
                        self.spatial_kernel
                    ),
                );
            }
            if !(self.spatial_lr.is_finite() && self.spatial_lr > 0.0) {
                return bad(
                    "codecs.spatial_lr",
                    format!("{} must be positive", self.spatial_lr),
                );
            }
        }
        if !(self.distill_weight.is_finite() && self.distill_weight >= 0.0) {
            return bad(
                "codecs.distill_weight",
                format!("{} must be non-negative", self.distill_weight),
            );
        }
        if !self.ae_ratios.is_empty() || !self.spatial_ratios.is_empty() {
            if !bits_ok(&self.ae_train_bits) {
                return bad(
                    "codecs.ae_train_bits",
                    format!("{} is outside 1..=8", self.ae_train_bits),
                );
            }
            if self.ae_bits.is_empty() {
                return bad(
                    "codecs.ae_bits",
                    "autoencoders need at least one bit width".into(),
                );
            }
            if self.ae_ratios.contains(&0) {
                return bad("codecs.ae_ratios", "a ratio must be at least 1".into());
            }
            if self.ae_budget.is_zero() {
                return bad(
                    "codecs.ae_budget",
                    format!("`{}` trains nothing", self.ae_budget),
                );
            }
            for (field, value) in [
                ("codecs.ae_train_images", self.ae_train_images),
                ("codecs.ae_batch_size", self.ae_batch_size),
            ] {
                if value == 0 {
                    return bad(field, "must be at least 1".into());
                }
            }
            if self.ae_kernel.is_multiple_of(2) || self.ae_kernel > usize::from(MAX_AE_KERNEL) {
                return bad(
                    "codecs.ae_kernel",
                    format!("{} must be odd and at most {MAX_AE_KERNEL}", self.ae_kernel),
                );
            }
            if !(self.ae_lr.is_finite() && self.ae_lr > 0.0) {
                return bad("codecs.ae_lr", format!("{} must be positive", self.ae_lr));
            }
        }
        crate::input_codecs::check_setup(&self)?;
        if !self.float32 && self.quant_bits.is_empty() {
            return bad(
                "codecs",
                "the raw input needs float32 or a quantizer".into(),
            );
        }
        Ok(CheckedCodecSetup(self))
    }

    /// The codecs without weights at a split point; at the input (`input_channels` is
    /// `Some`) also the entropy-coded quantizers and the image codecs
    /// ([`crate::input_codecs`]).
    fn fixed_ids(&self, input_channels: Option<usize>) -> Vec<CodecId> {
        let mut ids = Vec::new();
        if self.float32 {
            ids.push(CodecId::Float32);
        }
        ids.extend(self.quant_bits.iter().map(|&b| CodecId::quant(b, false)));
        match input_channels {
            Some(channels) => ids.extend(crate::input_codecs::extra_input_ids(self, channels)),
            None => ids.extend(
                self.per_channel_bits
                    .iter()
                    .map(|&b| CodecId::quant(b, true)),
            ),
        }
        ids
    }
}

/// Progress of [`build_codecs`].
#[derive(Debug, Clone, PartialEq)]
pub struct CodecProgress {
    /// Split point being worked on.
    pub split: usize,
    /// Autoencoder ratio being trained.
    pub ratio: u16,
    /// Autoencoders trained so far.
    pub done: usize,
    /// Autoencoders to train in all.
    pub total: usize,
    /// Task accuracy on the training batches of the last epoch.
    pub train_accuracy: f32,
}

/// One autoencoder to train at a split point: its ratio, config, learning rate, the bit widths
/// it is offered at and its seed.
struct AutoencoderJob<'a> {
    ratio: u16,
    config: AutoencoderConfig,
    options: TrainOptions,
    offered_bits: &'a [u8],
}

/// One split point's codecs in the making: the fixed ones, and the autoencoders to train
/// between its frozen halves (none at the raw input, or when the setup asks for none).
struct SplitCodecs<'a> {
    split: usize,
    shape: [usize; 3],
    codecs: Vec<BankCodec>,
    autoencoders: Option<(FrozenSplit, Vec<AutoencoderJob<'a>>)>,
}

/// The codec families (by split) and the matching codec bank for `splits` of `backbone`.
///
/// Split `0` (the raw input) gets fixed codecs only — quantizers, entropy-coded quantizers and
/// the image codecs, whose payloads are measured on a prefix of `train` — every other split
/// also gets the autoencoders of `setup`, trained with the backbone frozen on a prefix of
/// `train`.
///
/// The autoencoders train in parallel over the current rayon pool, on features (and
/// distillation targets) the frozen backbone computes once per split point: all split points
/// at once while their features fit in 512 MiB together, else in waves of split points that
/// do. Each trains from its own seed on kernels whose results do not depend on the thread
/// count, so the codecs are the same whatever the pool's size; only the order of the
/// `progress` calls (made from the threads that trained) may change.
pub fn build_codecs(
    backbone: &Network,
    splits: &[usize],
    train: &ImageDataset,
    norm: &Normalization,
    setup: &CheckedCodecSetup,
    device: &Device,
    progress: impl Fn(&CodecProgress) + Sync,
) -> Result<(Vec<CodecFamily>, CodecBank), AutomlError> {
    let shapes = backbone.spec().shapes()?;
    let subset = train.take(setup.ae_train_images.min(train.len()));
    let mut work = Vec::with_capacity(splits.len());
    for &split in splits {
        let shape = shapes
            .get(split)
            .ok_or_else(|| {
                AutomlError::InvalidDecision(format!("split {split} is past the network"))
            })?
            .dims();
        let mut codecs: Vec<BankCodec> = Vec::new();
        let input_channels = (split == 0).then_some(shape[0]);
        for id in setup.fixed_ids(input_channels) {
            codecs.push(BankCodec::Fixed(codec_for_input(id, norm)?));
        }
        // The raw input (split 0) has no device half to train an autoencoder after.
        let jobs = if split > 0 {
            autoencoder_jobs(setup, split, shape[0])
        } else {
            Vec::new()
        };
        let autoencoders = if jobs.is_empty() {
            None
        } else {
            let (device_half, edge_half) = backbone.valid().split(split)?;
            Some((FrozenSplit::new(&device_half, &edge_half), jobs))
        };
        work.push(SplitCodecs {
            split,
            shape,
            codecs,
            autoencoders,
        });
    }
    train_autoencoders(&mut work, &subset, norm, setup, device, &progress)?;
    let mut families = Vec::with_capacity(work.len());
    let mut bank = CodecBank::new();
    for SplitCodecs {
        split,
        shape,
        codecs,
        ..
    } in work
    {
        // Families are sorted by payload size (measured at the input for the codecs whose size
        // depends on the picture): the bank follows the same order.
        let sample = if split == 0 {
            Some(measure_sample(&subset, norm, setup, device)?)
        } else {
            None
        };
        let (family, codecs) = sized_family(shape, codecs, sample.as_ref())?;
        bank.push_candidate(shape, codecs);
        families.push(family);
    }
    Ok((families, bank))
}

/// The autoencoders of `setup` at `split` (a feature of `channels` channels): the channel
/// family (1×1 or k×k, stride 1), then the spatial one (stride 2, batch norm), each trained
/// once and offered at every bit width of its list.
fn autoencoder_jobs(
    setup: &CheckedCodecSetup,
    split: usize,
    channels: usize,
) -> Vec<AutoencoderJob<'_>> {
    let channel = setup.ae_ratios.iter().map(|&ratio| {
        let config = AutoencoderConfig::new(channels, usize::from(ratio))
            .with_bits(setup.ae_train_bits)
            .with_kernel(setup.ae_kernel);
        (ratio, config, setup.ae_lr, &setup.ae_bits)
    });
    let spatial = setup.spatial_ratios.iter().map(|&ratio| {
        let config = AutoencoderConfig::new(channels, usize::from(ratio))
            .with_bits(setup.spatial_train_bits)
            .with_kernel(setup.spatial_kernel)
            .with_stride(2)
            .with_batch_norm(true);
        (ratio, config, setup.spatial_lr, &setup.spatial_bits)
    });
    channel
        .chain(spatial)
        .enumerate()
        .map(
            |(family_index, (ratio, config, lr, offered_bits))| AutoencoderJob {
                ratio,
                config,
                options: TrainOptions::new()
                    .with_lr(lr)
                    .with_recon_weight(setup.ae_recon_weight)
                    .with_distill_weight(setup.distill_weight)
                    .with_seed(u64::from(ratio) * 1000 + split as u64 + 100 * family_index as u64),
                offered_bits,
            },
        )
        .collect()
}

/// Trains every split point's autoencoders (see [`build_codecs`]) and adds them to its
/// codecs, in job order.
fn train_autoencoders(
    work: &mut [SplitCodecs<'_>],
    subset: &ImageDataset,
    norm: &Normalization,
    setup: &CheckedCodecSetup,
    device: &Device,
    progress: &(impl Fn(&CodecProgress) + Sync),
) -> Result<(), AutomlError> {
    let total = work
        .iter()
        .filter_map(|w| w.autoencoders.as_ref())
        .map(|(_, jobs)| jobs.len())
        .sum();
    let done = AtomicUsize::new(0);
    let mut start = 0;
    while start < work.len() {
        // The next wave: as many split points as fit in the feature budget together (at
        // least one).
        let mut end = start;
        let mut bytes = 0;
        while end < work.len() {
            let more = match &work[end].autoencoders {
                Some((frozen, _)) => frozen.cache_bytes(subset.len())?,
                None => 0,
            };
            if end > start && bytes + more > FEATURE_CACHE_BYTES {
                break;
            }
            bytes += more;
            end += 1;
        }
        let wave = &mut work[start..end];
        let caches = wave
            .iter()
            .map(|w| match &w.autoencoders {
                Some((frozen, _)) => {
                    frozen.feature_cache(subset, norm, setup.distill_weight > 0.0, device)
                }
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, AutomlError>>()?;
        // (index in the wave, split point, its frozen halves, the autoencoder), in order.
        let jobs: Vec<(usize, usize, &FrozenSplit, &AutoencoderJob<'_>)> = wave
            .iter()
            .enumerate()
            .flat_map(|(index, w)| {
                w.autoencoders.iter().flat_map(move |(frozen, jobs)| {
                    jobs.iter().map(move |job| (index, w.split, frozen, job))
                })
            })
            .collect();
        let trained = jobs
            .par_iter()
            .map(|&(index, split, frozen, job)| {
                let mut last_accuracy = 0.0;
                let trained = frozen.train(
                    caches[index].as_ref(),
                    subset,
                    norm,
                    &job.config,
                    &job.options,
                    setup.ae_budget,
                    setup.ae_batch_size,
                    device,
                    &mut |report| last_accuracy = report.accuracy,
                )?;
                progress(&CodecProgress {
                    split,
                    ratio: job.ratio,
                    done: done.fetch_add(1, Ordering::Relaxed) + 1,
                    total,
                    train_accuracy: last_accuracy,
                });
                Ok(trained)
            })
            .collect::<Result<Vec<TrainedAutoencoder>, AutomlError>>()?;
        let learned: Vec<(usize, Vec<BankCodec>)> = jobs
            .iter()
            .zip(trained)
            .map(|(&(index, _, _, job), trained)| {
                let codecs = job
                    .offered_bits
                    .iter()
                    .map(|&bits| {
                        let codec = AutoencoderCodec::new(
                            job.config.clone().with_bits(bits),
                            trained.codec.model().clone(),
                        )?;
                        Ok(BankCodec::Learned(Box::new(codec)))
                    })
                    .collect::<Result<Vec<_>, AutomlError>>()?;
                Ok((index, codecs))
            })
            .collect::<Result<_, AutomlError>>()?;
        for (index, codecs) in learned {
            wave[index].codecs.extend(codecs);
        }
        start = end;
    }
    Ok(())
}

/// The largest feature cache [`train_split_autoencoder`] keeps (bytes); above it the device
/// half runs again on every batch.
const FEATURE_CACHE_BYTES: usize = 512 << 20;

/// The frozen device half's features of a training set with their labels and, for
/// distillation, the frozen edge half's logits on them (the backbone's own logits when the
/// device half is unpruned).
struct FeatureCache {
    features: Tensor<4>,
    labels: Tensor<1, Int>,
    teacher: Option<Tensor<2>>,
}

/// The two frozen halves of a backbone at a split point, in inference mode, that autoencoders
/// train between.
struct FrozenSplit {
    device_half: Network,
    edge_module: NetModule,
}

impl FrozenSplit {
    fn new(device_half: &Network, edge_half: &Network) -> FrozenSplit {
        FrozenSplit {
            device_half: device_half.valid(),
            edge_module: edge_half.valid().module().clone(),
        }
    }

    /// Bytes of the device half's features on `images` images.
    fn cache_bytes(&self, images: usize) -> Result<usize, AutomlError> {
        Ok(self
            .device_half
            .spec()
            .shapes()?
            .last()
            .map_or(0, |shape| shape.elements() * 4)
            * images)
    }

    /// The device half's features on `train` (and, with `teacher`, the edge half's logits on
    /// them), computed once, when they fit in [`FEATURE_CACHE_BYTES`].
    fn feature_cache(
        &self,
        train: &ImageDataset,
        norm: &Normalization,
        teacher: bool,
        device: &Device,
    ) -> Result<Option<FeatureCache>, AutomlError> {
        if self.cache_bytes(train.len())? > FEATURE_CACHE_BYTES {
            return Ok(None);
        }
        let mut features = Vec::new();
        let mut labels = Vec::new();
        let mut logits = Vec::new();
        for (images, batch_labels) in
            Batches::new(train, coinfer_split::train::EVAL_BATCH_SIZE, norm, device)?
        {
            let batch = self.device_half.module().forward_features(images);
            if teacher {
                logits.push(self.edge_module.forward(batch.clone()));
            }
            features.push(batch);
            labels.push(batch_labels);
        }
        Ok(Some(FeatureCache {
            features: Tensor::cat(features, 0),
            labels: Tensor::cat(labels, 0),
            teacher: teacher.then(|| Tensor::cat(logits, 0)),
        }))
    }

    /// Trains one autoencoder between the halves (see [`train_split_autoencoder`]), gathering
    /// its batches from `cache` when there is one.
    #[allow(clippy::too_many_arguments)]
    fn train(
        &self,
        cache: Option<&FeatureCache>,
        train: &ImageDataset,
        norm: &Normalization,
        config: &AutoencoderConfig,
        options: &TrainOptions,
        budget: Budget,
        batch_size: usize,
        device: &Device,
        progress: &mut dyn FnMut(&EpochReport),
    ) -> Result<TrainedAutoencoder, AutomlError> {
        let edge = |x: Tensor<4>| self.edge_module.forward(x);
        // Fail on a bad batch size here, with its own error, rather than as "no batches".
        let per_pass = Batches::new(train, batch_size, norm, device)?.len();
        let steps = budget.steps(train.len(), batch_size);
        let options = options.clone().with_epochs(budget.passes(train.len()));
        let batches = |epoch: usize| {
            let left = steps.saturating_sub(epoch * per_pass);
            let shuffled = Batches::new(train, batch_size, norm, device)
                .map(|b| b.shuffle(options.seed, epoch as u64))
                .ok();
            let batches: Box<dyn Iterator<Item = TrainBatch>> = match cache {
                Some(cache) => {
                    let order = shuffled.map(|b| b.order().to_vec()).unwrap_or_default();
                    let batches: Vec<Vec<usize>> = order
                        .chunks(batch_size)
                        .take(left)
                        .map(<[usize]>::to_vec)
                        .collect();
                    Box::new(batches.into_iter().map(move |indices| {
                        let indices = Tensor::<1, Int>::from_data(
                            TensorData::new(
                                indices.iter().map(|&i| i as i64).collect::<Vec<i64>>(),
                                [indices.len()],
                            ),
                            device,
                        );
                        TrainBatch {
                            feature: cache.features.clone().select(0, indices.clone()),
                            labels: cache.labels.clone().select(0, indices.clone()),
                            teacher: cache
                                .teacher
                                .as_ref()
                                .map(|teacher| teacher.clone().select(0, indices)),
                        }
                    }))
                }
                None => Box::new(shuffled.into_iter().flatten().take(left).map(
                    |(images, labels)| {
                        TrainBatch::from((
                            self.device_half.module().forward_features(images),
                            labels,
                        ))
                    },
                )),
            };
            batches
        };
        Ok(train_autoencoder(
            config, device, batches, &edge, &options, progress,
        )?)
    }
}

/// Trains one autoencoder for the split point between `device_half` and `edge_half` of a
/// frozen backbone: the features of `train` (batches of `batch_size`, reshuffled every pass
/// with `options.seed`, as many as `budget` allows; `options.epochs` is the budget's passes
/// over `train`) go through the autoencoder into the frozen edge half. With
/// `options.distill_weight > 0` the targets include the edge half's logits on the
/// uncompressed feature, which are the backbone's own logits when `device_half` is unpruned.
///
/// The device half is frozen, so its features do not change between passes: when they fit in
/// 512 MiB they (and the distillation targets) are computed once, and every pass gathers its
/// shuffled batches from them (the same images in the same order as running the device half
/// on each batch).
///
/// # Errors
/// As [`train_autoencoder`], plus batching errors.
#[allow(clippy::too_many_arguments)]
pub fn train_split_autoencoder(
    device_half: &Network,
    edge_half: &Network,
    train: &ImageDataset,
    norm: &Normalization,
    config: &AutoencoderConfig,
    options: &TrainOptions,
    budget: Budget,
    batch_size: usize,
    device: &Device,
    progress: &mut dyn FnMut(&EpochReport),
) -> Result<TrainedAutoencoder, AutomlError> {
    let frozen = FrozenSplit::new(device_half, edge_half);
    // Fail on a bad batch size before computing any feature.
    Batches::new(train, batch_size, norm, device)?;
    let cache = frozen.feature_cache(train, norm, options.distill_weight > 0.0, device)?;
    frozen.train(
        cache.as_ref(),
        train,
        norm,
        config,
        options,
        budget,
        batch_size,
        device,
        progress,
    )
}
