//! Trains the codec families of every split point of a trained backbone and measures each
//! codec: bits per sample from real payloads (one sample per payload, header included,
//! entropy coding where it is smaller), and the test accuracy of the split network with the
//! codec in the loop. With `--finetune`, the codecs of the split points named by `--splits`
//! (default 1) also get the three-step fine-tuning (pruned device half, codec, everything
//! jointly, with distillation from the backbone) and their accuracy after it.
//!
//! ```text
//! cargo run --release -p coinfer-automl --example codec_table -- [--json] [--finetune]
//!     [--splits 1,2] [--only 1,2] [--backbone path.cfnet] [--ae-epochs 5] [--train-images 3000]
//!     [--ft-epochs 1,2,2] [--channel-ratios 4,16] [--spatial-ratios 8,16] [--train-bits 3]
//!     [--bits 2,3] [--spatial-lr 3e-3]
//! ```
//! `--only` restricts the table to some split points (default: all). Without `--backbone` it loads the backbone `coinfer search` caches
//! (`results/cache/resnet-mini-fashion-mnist-subset-e8-s1-v500.cfnet`), training and saving
//! it first when it is missing, exactly as the search does (8 epochs, seed 1, the 500
//! validation images held out). Autoencoders and fine-tuning use a prefix of the remaining
//! training images only (`--train-images`); accuracies are on the 1,000 test images.
//!
//! Families: float32, per-tensor 2/4/8-bit and per-channel 4-bit quantizers; channel
//! autoencoders (1×1 conv, `r` of `--channel-ratios`) and spatial ones (3×3 stride-2 conv +
//! batch norm, upsample + 3×3 conv + batch norm, `r` of `--spatial-ratios`), each trained once
//! at `--train-bits` (or at each offered width with `--train-bits each`; straight-through, cross-entropy + distillation from the backbone +
//! 0.1 × reconstruction MSE) and offered at every width of `--bits`, entropy coded where that
//! is smaller. Float32 is never fine-tuned (lossless).
//!
//! `--json` prints one object per codec and split on stdout:
//! `{"split":1,"codec":"ae-r8-b3-k3-s2-ec","family":"spatial","bits_per_sample":912,
//! "test_accuracy":0.84,"finetuned_test_accuracy":0.86,"backbone_test_accuracy":0.865, ...}`
//! (`finetuned_test_accuracy` is `null` where no fine-tuning ran); without it, a Markdown
//! table per split. Progress goes to stderr.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use coinfer_automl::codecs::train_split_autoencoder;
use coinfer_automl::finetune::{ThreeStepConfig, fine_tune_three_steps, plan_accuracy};
use coinfer_automl::split_validation;
use coinfer_codec::{
    AutoencoderCodec, AutoencoderConfig, CodecId, FeatureCodec, TrainOptions, fixed_codec,
};
use coinfer_data::{Budget, ImageDataset, Normalization, TrainTest, embedded};
use coinfer_split::train::{TrainConfig, evaluate, train_classifier};
use coinfer_split::{Network, zoo};
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const CACHE: &str = "results/cache/resnet-mini-fashion-mnist-subset-e8-s1-v500.cfnet";
const SEED: u64 = 1;
const VALIDATION_IMAGES: usize = 500;
/// Test images whose single-sample payloads give the measured bits per sample.
const SIZE_SAMPLES: usize = 200;

struct Args {
    json: bool,
    finetune: bool,
    splits: Vec<usize>,
    only: Option<Vec<usize>>,
    backbone: Option<PathBuf>,
    ae_epochs: usize,
    spatial_lr: f64,
    train_images: usize,
    ft_epochs: [usize; 3],
    channel_ratios: Vec<usize>,
    spatial_ratios: Vec<usize>,
    /// `None`: one training per offered width.
    train_bits: Option<u8>,
    bits: Vec<u8>,
}

fn list<T: std::str::FromStr>(text: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + 'static,
{
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<T>().map_err(Into::into))
        .collect()
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        json: false,
        finetune: false,
        splits: vec![1],
        only: None,
        backbone: None,
        ae_epochs: 5,
        spatial_lr: 3e-3,
        train_images: 3000,
        ft_epochs: [1, 2, 2],
        channel_ratios: vec![4, 16],
        spatial_ratios: vec![8, 16],
        train_bits: Some(3),
        bits: vec![2, 3],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--json" => args.json = true,
            "--finetune" => args.finetune = true,
            "--splits" => args.splits = list(&value()?)?,
            "--only" => args.only = Some(list(&value()?)?),
            "--backbone" => args.backbone = Some(PathBuf::from(value()?)),
            "--ae-epochs" => args.ae_epochs = value()?.parse()?,
            "--spatial-lr" => args.spatial_lr = value()?.parse()?,
            "--ft-epochs" => {
                let epochs: Vec<usize> = list(&value()?)?;
                args.ft_epochs = epochs
                    .try_into()
                    .map_err(|_| "--ft-epochs takes three numbers")?;
            }
            "--train-images" => args.train_images = value()?.parse()?,
            "--channel-ratios" => args.channel_ratios = list(&value()?)?,
            "--spatial-ratios" => args.spatial_ratios = list(&value()?)?,
            "--train-bits" => {
                args.train_bits = match value()?.as_str() {
                    "each" => None,
                    v => Some(v.parse()?),
                }
            }
            "--bits" => args.bits = list(&value()?)?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    Ok(args)
}

/// The backbone `coinfer search` uses by default: loaded from its cache, or trained the same
/// way and cached.
fn backbone(path: Option<&Path>, data: &TrainTest, device: &Device) -> Result<Network> {
    if let Some(path) = path {
        eprintln!("backbone: loading {}", path.display());
        return Ok(Network::load(path, device)?);
    }
    let cache = Path::new(CACHE);
    if cache.exists() {
        eprintln!("backbone: reusing {CACHE}");
        return Ok(Network::load(cache, device)?);
    }
    let (train_part, _) = split_validation(&data.train, VALIDATION_IMAGES, SEED)?;
    device.seed(SEED);
    let net = Network::new(zoo::resnet_mini(10), device)?;
    let norm = Normalization::fit(&data.train);
    let config = TrainConfig {
        budget: Budget::Epochs(8),
        seed: SEED,
        ..TrainConfig::default()
    };
    let start = Instant::now();
    let trained = train_classifier(net, &train_part, &norm, &config, device, |p| {
        if p.step + 1 == p.steps_per_epoch {
            eprintln!(
                "backbone: epoch {} loss {:.3} accuracy {:.1}% ({:.0} s)",
                p.epoch + 1,
                p.loss,
                100.0 * p.accuracy,
                start.elapsed().as_secs_f64()
            );
        }
    })?;
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir)?;
    }
    trained.save(cache)?;
    eprintln!("backbone: saved to {CACHE}");
    Ok(trained)
}

/// One codec of a split point, ready to measure.
struct Member {
    name: String,
    family: &'static str,
    codec: Arc<dyn FeatureCodec + Send + Sync>,
    autoencoder: Option<AutoencoderCodec>,
    train_seconds: Option<f64>,
}

/// Mean payload bits of single-sample payloads of the device half's features.
fn measured_bits(
    codec: &dyn FeatureCodec,
    device_half: &Network,
    test: &ImageDataset,
    norm: &Normalization,
    device: &Device,
) -> Result<f64> {
    let indices: Vec<usize> = (0..SIZE_SAMPLES.min(test.len())).collect();
    let (images, _) = test.batch(&indices, norm, device)?;
    let features = device_half.forward(images)?;
    let mut total = 0u64;
    for i in 0..indices.len() {
        let sample = features.clone().narrow(0, i, 1);
        total += codec.encode(sample)?.bits();
    }
    Ok(total as f64 / indices.len() as f64)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let start = Instant::now();
    let device = Device::flex();
    let data = embedded::fashion_mnist_subset()?;
    let norm = Normalization::fit(&data.train);
    let backbone = backbone(args.backbone.as_deref(), &data, &device)?.valid();
    let (train, _) = split_validation(&data.train, VALIDATION_IMAGES, SEED)?;
    let train = train.take(args.train_images.min(train.len()));
    let backbone_accuracy = evaluate(&backbone, &data.test, &norm, 250, &device)?;
    eprintln!(
        "backbone test accuracy {:.2}% ({} training images for the codecs)",
        100.0 * backbone_accuracy,
        train.len()
    );
    let shapes = backbone.spec().shapes()?;
    let splits: Vec<usize> = backbone
        .spec()
        .split_points()
        .filter(|&s| !shapes[s].flat)
        .filter(|s| args.only.as_ref().is_none_or(|only| only.contains(s)))
        .collect();
    let finetune_splits: BTreeSet<usize> = if args.finetune {
        args.splits.iter().copied().collect()
    } else {
        BTreeSet::new()
    };
    let ft_config = ThreeStepConfig {
        device_budget: Budget::Epochs(args.ft_epochs[0]),
        codec_budget: Budget::Epochs(args.ft_epochs[1]),
        joint_budget: Budget::Epochs(args.ft_epochs[2]),
        ..ThreeStepConfig::default()
    };
    for split in splits {
        let [c, h, w] = shapes[split].dims();
        let (device_half, edge_half) = backbone.clone().split(split)?;
        let mut members = Vec::new();
        for id in [
            CodecId::Float32,
            CodecId::quant(2, false),
            CodecId::quant(4, false),
            CodecId::quant(8, false),
            CodecId::quant(4, true),
        ] {
            members.push(Member {
                name: id.to_string(),
                family: "fixed",
                codec: fixed_codec(id)?,
                autoencoder: None,
                train_seconds: None,
            });
        }
        let channel = args.channel_ratios.iter().map(|&r| {
            AutoencoderConfig::new(c, r)
                .with_kernel(1)
                .with_entropy(true)
        });
        let spatial = args.spatial_ratios.iter().map(|&r| {
            AutoencoderConfig::new(c, r)
                .with_kernel(3)
                .with_stride(2)
                .with_batch_norm(true)
                .with_entropy(true)
        });
        let trainings: Vec<(AutoencoderConfig, Vec<u8>)> = channel
            .chain(spatial)
            .flat_map(|config| match args.train_bits {
                Some(bits) => vec![(config.with_bits(bits), args.bits.clone())],
                None => args
                    .bits
                    .iter()
                    .map(|&b| (config.clone().with_bits(b), vec![b]))
                    .collect(),
            })
            .collect();
        for (config, offered) in trainings {
            let family = if config.stride > 1 {
                "spatial"
            } else {
                "channel"
            };
            let options = TrainOptions::new()
                .with_lr(if family == "spatial" {
                    args.spatial_lr
                } else {
                    1e-2
                })
                .with_recon_weight(0.1)
                .with_distill_weight(0.5)
                .with_seed(config.ratio as u64 * 1000 + split as u64);
            let begin = Instant::now();
            let trained = train_split_autoencoder(
                &device_half,
                &edge_half,
                &train,
                &norm,
                &config,
                &options,
                Budget::Epochs(args.ae_epochs),
                64,
                &device,
                &mut |_| {},
            )?;
            let seconds = begin.elapsed().as_secs_f64();
            eprintln!(
                "split {split}: trained {} in {seconds:.1} s (train accuracy {:.1}%; {:.0} s total)",
                config.codec_id(),
                100.0 * trained.history.last().map_or(0.0, |r| r.accuracy),
                start.elapsed().as_secs_f64()
            );
            // One set of weights serves every offered bit width (as in the search).
            for &bits in &offered {
                let codec = AutoencoderCodec::new(
                    config.clone().with_bits(bits),
                    trained.codec.model().clone(),
                )?;
                members.push(Member {
                    name: codec.id().to_string(),
                    family,
                    codec: Arc::new(codec.clone()),
                    autoencoder: Some(codec),
                    train_seconds: Some(seconds),
                });
            }
        }
        let mut rows = Vec::new();
        for member in &members {
            let bits = measured_bits(
                member.codec.as_ref(),
                &device_half,
                &data.test,
                &norm,
                &device,
            )?;
            let accuracy = plan_accuracy(
                &device_half,
                &edge_half,
                member.codec.as_ref(),
                &data.test,
                &norm,
                &device,
            )?;
            // Float32 is lossless: there is nothing for fine-tuning to recover.
            let tune = finetune_splits.contains(&split) && member.codec.id() != CodecId::Float32;
            let (finetuned, steps, ft_seconds) = if tune {
                let begin = Instant::now();
                let name = member.name.clone();
                let outcome = fine_tune_three_steps(
                    &backbone,
                    &backbone,
                    split,
                    member.codec.id(),
                    member.autoencoder.as_ref(),
                    &train,
                    &data.test,
                    &norm,
                    &ft_config,
                    &device,
                    |p| {
                        if p.done == p.total {
                            eprintln!(
                                "split {split} {name}: {:?} done, loss {:.3}",
                                p.step, p.loss
                            );
                        }
                    },
                )?;
                let last = outcome.steps.last().map(|s| s.accuracy_after);
                (
                    last,
                    serde_json::to_value(&outcome.steps)?,
                    Some(begin.elapsed().as_secs_f64()),
                )
            } else {
                (None, serde_json::Value::Null, None)
            };
            eprintln!(
                "split {split} {}: {bits:.0} bits, test {:.2}%{}",
                member.name,
                100.0 * accuracy,
                finetuned.map_or(String::new(), |a| format!(", fine-tuned {:.2}%", 100.0 * a))
            );
            rows.push(json!({
                "split": split,
                "feature_shape": [c, h, w],
                "codec": member.name,
                "family": member.family,
                "bits_per_sample": bits.round() as u64,
                "test_accuracy": accuracy,
                "finetuned_test_accuracy": finetuned,
                "backbone_test_accuracy": backbone_accuracy,
                "train_seconds": member.train_seconds,
                "finetune_seconds": ft_seconds,
                "finetune_steps": steps,
            }));
        }
        rows.sort_by_key(|r| r["bits_per_sample"].as_u64());
        if args.json {
            for row in &rows {
                println!("{row}");
            }
        } else {
            println!("## Split {split} (feature {c}×{h}×{w})\n");
            println!(
                "| codec | family | bits / sample | test accuracy | fine-tuned | backbone |\n|---|---|---|---|---|---|"
            );
            let pct = |v: &serde_json::Value| {
                v.as_f64()
                    .map_or("–".to_string(), |a| format!("{:.2}%", 100.0 * a))
            };
            for row in &rows {
                println!(
                    "| {} | {} | {} | {} | {} | {} |",
                    row["codec"].as_str().unwrap_or_default(),
                    row["family"].as_str().unwrap_or_default(),
                    row["bits_per_sample"],
                    pct(&row["test_accuracy"]),
                    pct(&row["finetuned_test_accuracy"]),
                    pct(&row["backbone_test_accuracy"]),
                );
            }
            println!();
        }
    }
    eprintln!("total {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
