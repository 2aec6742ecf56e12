//! Measured latency of every block on the running burn backend, kept as a [`ProfileTable`] that
//! is saved to JSON once and reused.
//!
//! Each block runs alone on a random input of its real shape: `warmup` untimed runs, then
//! `repeats` timed ones. The device is synchronised before the clock starts and again before it
//! is read, so asynchronous backends (wgpu) are timed for the work they did, not for queueing it.
//! Repeats go round-robin over the blocks (block 0, 1, …, n−1, then again), so a burst of load
//! from another process spreads over all blocks instead of inflating one. The table keeps the
//! median and the 10th/90th percentiles: the median is what the latency model uses.

use std::path::Path;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_split::{
    BlockSpec, FeatureShape, NetSpec, Network,
    inference::{HostActivation, InferenceNetwork},
};
use serde::{Deserialize, Serialize};

use crate::cost::NetCost;
use crate::error::{ProfileError, Result, check_non_negative};

/// How to measure: batch size, untimed warm-up runs and timed repeats.
#[derive(Config, Debug, PartialEq)]
pub struct MeasureConfig {
    /// Samples per forward pass; 1 is the co-inference setting (one image per request).
    #[config(default = 1)]
    pub batch_size: usize,
    /// Untimed runs of every block before timing (caches, allocator, lazy initialisation).
    #[config(default = 5)]
    pub warmup: usize,
    /// Timed runs of every block.
    #[config(default = 30)]
    pub repeats: usize,
}

impl MeasureConfig {
    /// Checks the options: `batch_size` and `repeats` must be at least 1.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(ProfileError::InvalidOption {
                field: "batch_size",
                reason: "must be at least 1".into(),
            });
        }
        if self.repeats == 0 {
            return Err(ProfileError::InvalidOption {
                field: "repeats",
                reason: "must be at least 1 (the median of no runs is undefined)".into(),
            });
        }
        Ok(())
    }
}

/// Summary of repeated wall-clock timings, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimingStats {
    /// Median.
    pub median_s: f64,
    /// 10th percentile (linear interpolation between order statistics).
    pub p10_s: f64,
    /// 90th percentile.
    pub p90_s: f64,
    /// Number of timed runs.
    pub samples: usize,
}

impl TimingStats {
    /// Summarises raw timings; `None` when there are none.
    pub fn from_samples(samples: &[f64]) -> Option<TimingStats> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(TimingStats {
            median_s: quantile(&sorted, 0.5),
            p10_s: quantile(&sorted, 0.1),
            p90_s: quantile(&sorted, 0.9),
            samples: sorted.len(),
        })
    }

    /// A point mass: all three statistics equal `seconds` (for hand-written tables).
    pub fn exact(seconds: f64) -> TimingStats {
        TimingStats {
            median_s: seconds,
            p10_s: seconds,
            p90_s: seconds,
            samples: 1,
        }
    }

    fn check(&self, owner: &str) -> Result<()> {
        check_non_negative(format!("{owner}.median_s"), self.median_s)?;
        check_non_negative(format!("{owner}.p10_s"), self.p10_s)?;
        check_non_negative(format!("{owner}.p90_s"), self.p90_s)
    }
}

/// `sorted` must be non-empty and ascending.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    let frac = position - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * frac
}

/// The measured time of one block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockTiming {
    /// Position of the block.
    pub index: usize,
    /// Its kind (`conv_bn_relu`, ...), for readers of the JSON.
    pub kind: String,
    /// Its output shape.
    pub output: FeatureShape,
    /// Its FLOPs per sample (see [`crate::NetCost`]); the reference for scaling pruned blocks.
    pub flops: u64,
    /// The timings, in seconds for one forward pass of `batch_size` samples.
    #[serde(flatten)]
    pub time: TimingStats,
}

/// Measured per-block latencies of one network on one backend: measure once on the real device,
/// save with [`save`](Self::save), reuse with [`load`](Self::load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileTable {
    /// Name of the measured network.
    pub network: String,
    /// The measured network's spec (a table can be reused for pruned variants of it).
    pub spec: NetSpec,
    /// The backend and device it ran on (burn's device description).
    pub backend: String,
    /// Samples per timed forward pass.
    pub batch_size: usize,
    /// Untimed warm-up runs per block.
    pub warmup: usize,
    /// Timed runs per block.
    pub repeats: usize,
    /// One row per block, in order.
    pub blocks: Vec<BlockTiming>,
}

impl ProfileTable {
    /// Sum of the blocks' median times (the whole network, block by block).
    pub fn total_median_s(&self) -> f64 {
        self.blocks.iter().fold(0.0, |acc, b| acc + b.time.median_s)
    }

    /// Checks the table against itself: its spec is valid, one row per block with the spec's
    /// kind, output shape and FLOPs, non-negative finite times, `batch_size ≥ 1`.
    pub fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(ProfileError::InvalidValue {
                field: "batch_size".into(),
                value: 0.0,
                requirement: "must be at least 1",
            });
        }
        let cost = NetCost::of(&self.spec)?;
        let inconsistent = |reason: String| ProfileError::TableMismatch {
            table: self.network.clone(),
            network: self.spec.name.clone(),
            reason: format!("the table disagrees with its own spec: {reason}"),
        };
        if self.blocks.len() != cost.len() {
            return Err(inconsistent(format!(
                "{} timing rows for {} blocks",
                self.blocks.len(),
                cost.len()
            )));
        }
        for (i, (row, block)) in self.blocks.iter().zip(&cost.blocks).enumerate() {
            if row.index != i || row.kind != block.kind || row.output != block.output {
                return Err(inconsistent(format!(
                    "row {i} is block {} ({}, output {:?}) but the spec's block {i} is {} with \
                     output {:?}",
                    row.index,
                    row.kind,
                    row.output.dims(),
                    block.kind,
                    block.output.dims()
                )));
            }
            if row.flops != block.flops {
                return Err(inconsistent(format!(
                    "row {i} records {} FLOPs, the spec's block has {}",
                    row.flops, block.flops
                )));
            }
            row.time.check(&format!("blocks[{i}]"))?;
        }
        Ok(())
    }

    /// Checks that this table can cost `spec`: the same input, the same number of blocks, and
    /// every block of the same kind with the same kernel, stride, padding and spatial output
    /// size. Widths (filters, inner channels, features) may differ: that is what pruning changes,
    /// and [`block_times_for`](Self::block_times_for) scales those blocks by their FLOPs.
    pub fn check_matches(&self, spec: &NetSpec) -> Result<()> {
        let mismatch = |reason: String| ProfileError::TableMismatch {
            table: self.network.clone(),
            network: spec.name.clone(),
            reason,
        };
        if spec.input != self.spec.input {
            return Err(mismatch(format!(
                "the table's input is {:?}, the network's {:?}",
                self.spec.input.dims(),
                spec.input.dims()
            )));
        }
        if spec.blocks.len() != self.spec.blocks.len() {
            return Err(mismatch(format!(
                "the table has {} blocks, the network {}",
                self.spec.blocks.len(),
                spec.blocks.len()
            )));
        }
        let theirs = spec.shapes()?;
        let ours = self.spec.shapes()?;
        for (i, (a, b)) in self.spec.blocks.iter().zip(&spec.blocks).enumerate() {
            if skeleton(a) != skeleton(b) {
                return Err(mismatch(format!(
                    "block {i} is {a:?} in the table but {b:?} in the network \
                     (only channel counts may differ)"
                )));
            }
            let (x, y) = (ours[i + 1], theirs[i + 1]);
            if (x.height, x.width, x.flat) != (y.height, y.width, y.flat) {
                return Err(mismatch(format!(
                    "block {i} outputs {}×{} in the table but {}×{} in the network",
                    x.height, x.width, y.height, y.width
                )));
            }
        }
        Ok(())
    }

    /// The predicted time of every block of `spec` (a possibly pruned variant of the measured
    /// network): the measured median, multiplied by `flops(spec block) / flops(measured block)`
    /// where the two differ.
    ///
    /// FLOP scaling assumes a block's time is proportional to its arithmetic, which holds for
    /// the compute-bound convolutions that pruning shrinks; for a very thin block it
    /// underestimates the fixed per-call cost. Blocks without FLOPs (flatten) keep their
    /// measured time.
    pub fn block_times_for(&self, spec: &NetSpec) -> Result<Vec<f64>> {
        self.check()?;
        self.check_matches(spec)?;
        let cost = NetCost::of(spec)?;
        Ok(self
            .blocks
            .iter()
            .zip(&cost.blocks)
            .map(|(row, block)| {
                if row.flops == 0 || row.flops == block.flops {
                    row.time.median_s
                } else {
                    row.time.median_s * block.flops as f64 / row.flops as f64
                }
            })
            .collect())
    }

    /// The table as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|source| ProfileError::Json {
            origin: format!("profile table of {}", self.network),
            source,
        })
    }

    /// Parses and [validates](Self::check) a table; `origin` names the source in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<ProfileTable> {
        let table: ProfileTable =
            serde_json::from_str(json).map_err(|source| ProfileError::Json {
                origin: origin.to_string(),
                source,
            })?;
        table.check()?;
        Ok(table)
    }

    /// Writes the table as JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()?).map_err(|source| ProfileError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and validates a table written by [`save`](Self::save).
    pub fn load(path: impl AsRef<Path>) -> Result<ProfileTable> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        ProfileTable::from_json(&json, &path.display().to_string())
    }
}

/// A block with its widths zeroed: what must agree between a table and a pruned network.
fn skeleton(block: &BlockSpec) -> BlockSpec {
    match block.clone() {
        BlockSpec::ConvBnRelu {
            kernel,
            stride,
            padding,
            ..
        } => BlockSpec::ConvBnRelu {
            out_channels: 0,
            kernel,
            stride,
            padding,
        },
        BlockSpec::BasicBlock { stride, .. } => BlockSpec::BasicBlock {
            mid_channels: 0,
            out_channels: 0,
            stride,
        },
        BlockSpec::DepthwiseSeparable { stride, .. } => BlockSpec::DepthwiseSeparable {
            out_channels: 0,
            stride,
        },
        BlockSpec::InvertedResidual { stride, .. } => BlockSpec::InvertedResidual {
            expand_channels: 0,
            out_channels: 0,
            stride,
        },
        BlockSpec::Linear { relu, .. } => BlockSpec::Linear {
            out_features: 0,
            relu,
        },
        other => other,
    }
}

/// A readable name of the backend behind `device` (burn's device description).
pub fn backend_name(device: &Device) -> String {
    let full = format!("{device:?}");
    full.strip_prefix("Device<")
        .and_then(|s| s.strip_suffix('>'))
        .map(str::to_string)
        .unwrap_or(full)
}

fn sync(device: &Device, what: &dyn Fn() -> String) -> Result<()> {
    device.sync().map_err(|e| ProfileError::Backend {
        what: what(),
        reason: format!("{e:?}"),
    })
}

/// Runs `run` once and returns its wall time in seconds, the device drained on both sides.
fn timed(
    device: &Device,
    what: &dyn Fn() -> String,
    run: impl FnOnce() -> Tensor<4>,
) -> Result<f64> {
    sync(device, what)?;
    let start = Instant::now();
    let output = run();
    sync(device, what)?;
    let seconds = start.elapsed().as_secs_f64();
    // Dropped after the clock stops: freeing the output is not the block's latency.
    drop(output);
    Ok(seconds)
}

fn random_input(shape: FeatureShape, batch: usize, device: &Device) -> Tensor<4> {
    let [c, h, w] = shape.dims();
    Tensor::random([batch, c, h, w], Distribution::Normal(0.0, 1.0), device)
}

/// `network` on `device` in the form a deployment runs: batch norm folded (see
/// [`InferenceNetwork`]).
fn inference_form(network: &Network, device: &Device) -> Result<InferenceNetwork> {
    Ok(InferenceNetwork::from_network(
        &network.valid().to_device(device),
    )?)
}

/// Measures every block of `network` alone on `device` in inference form (batch norm folded
/// into the convolutions, as deployed; random input of the block's real shape) and returns the
/// table.
///
/// ```
/// use burn::prelude::*;
/// use coinfer_profile::{MeasureConfig, measure_blocks};
/// use coinfer_split::{zoo, Network};
///
/// let device = Device::flex();
/// let net = Network::new(zoo::resnet_mini(10), &device)?;
/// let config = MeasureConfig::new().with_warmup(1).with_repeats(3);
/// let table = measure_blocks(&net, &config, &device)?;
/// assert_eq!(table.blocks.len(), net.spec().blocks.len());
/// // Each block's median lies between its 10th and 90th percentiles.
/// assert!(table.blocks.iter().all(|b| b.time.p10_s <= b.time.median_s && b.time.median_s <= b.time.p90_s));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn measure_blocks(
    network: &Network,
    config: &MeasureConfig,
    device: &Device,
) -> Result<ProfileTable> {
    config.check()?;
    let net = inference_form(network, device)?;
    let spec = net.spec();
    let cost = NetCost::of(spec)?;
    let inputs: Vec<Tensor<4>> = cost
        .blocks
        .iter()
        .map(|b| random_input(b.input, config.batch_size, device))
        .collect();
    // On a CPU backend each block runs on the CPU kernels in their own layout, converted
    // before the clock starts: a deployed half converts only at its two ends, not per block.
    let host_inputs: Option<Vec<HostActivation>> = inputs
        .iter()
        .map(|x| net.host_activation(x.clone()))
        .collect();
    let mut samples = vec![Vec::with_capacity(config.repeats); net.blocks.len()];
    for round in 0..config.warmup + config.repeats {
        for (i, input) in inputs.iter().enumerate() {
            let seconds = match &host_inputs {
                Some(host) => {
                    let start = Instant::now();
                    let output = net.forward_block_host(i, &host[i])?;
                    let seconds = start.elapsed().as_secs_f64();
                    drop(output);
                    seconds
                }
                None => {
                    let what = || format!("block {i} of {}", spec.name);
                    timed(device, &what, || net.blocks[i].forward(input.clone()))?
                }
            };
            if round >= config.warmup {
                samples[i].push(seconds);
            }
        }
    }
    let rows = cost
        .blocks
        .iter()
        .zip(&samples)
        .map(|(block, times)| BlockTiming {
            index: block.index,
            kind: block.kind.clone(),
            output: block.output,
            flops: block.flops,
            time: TimingStats::from_samples(times).unwrap_or(TimingStats::exact(0.0)),
        })
        .collect();
    Ok(ProfileTable {
        network: spec.name.clone(),
        spec: spec.clone(),
        backend: backend_name(device),
        batch_size: config.batch_size,
        warmup: config.warmup,
        repeats: config.repeats,
        blocks: rows,
    })
}

/// Measures `network` (a whole network or one half of a split) as one forward pass, with the
/// same protocol as [`measure_blocks`]; returns the statistics of one pass of `batch_size`.
pub fn measure_forward(
    network: &Network,
    config: &MeasureConfig,
    device: &Device,
) -> Result<TimingStats> {
    config.check()?;
    let net = inference_form(network, device)?;
    let input = random_input(net.spec().input, config.batch_size, device);
    let what = || format!("forward of {}", net.spec().name);
    let mut samples = Vec::with_capacity(config.repeats);
    for round in 0..config.warmup + config.repeats {
        let seconds = timed(device, &what, || net.forward_unchecked(input.clone()))?;
        if round >= config.warmup {
            samples.push(seconds);
        }
    }
    TimingStats::from_samples(&samples).ok_or(ProfileError::InvalidOption {
        field: "repeats",
        reason: "must be at least 1".into(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use coinfer_split::zoo;

    /// A table for resnet-mini with made-up times (1 ms per block), for tests without a clock.
    pub(crate) fn synthetic_table(spec: &NetSpec) -> ProfileTable {
        let cost = NetCost::of(spec).unwrap();
        ProfileTable {
            network: spec.name.clone(),
            spec: spec.clone(),
            backend: "synthetic".into(),
            batch_size: 1,
            warmup: 0,
            repeats: 1,
            blocks: cost
                .blocks
                .iter()
                .map(|b| BlockTiming {
                    index: b.index,
                    kind: b.kind.clone(),
                    output: b.output,
                    flops: b.flops,
                    time: TimingStats::exact(1e-3),
                })
                .collect(),
        }
    }

    #[test]
    fn quantiles_interpolate() {
        let stats = TimingStats::from_samples(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(stats.median_s, 3.0);
        assert!((stats.p10_s - 1.4).abs() < 1e-12);
        assert!((stats.p90_s - 4.6).abs() < 1e-12);
        assert_eq!(stats.samples, 5);
        assert!(TimingStats::from_samples(&[]).is_none());
    }

    #[test]
    fn measured_table_round_trips_through_json() {
        let device = Device::flex();
        let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
        let config = MeasureConfig::new().with_warmup(1).with_repeats(3);
        let table = measure_blocks(&net, &config, &device).unwrap();
        assert_eq!(table.blocks.len(), net.spec().blocks.len());
        assert_eq!(table.repeats, 3);
        assert!(table.blocks.iter().all(|b| b.time.samples == 3));
        assert!(table.blocks.iter().all(|b| b.time.p10_s <= b.time.median_s));
        assert!(table.blocks.iter().all(|b| b.time.median_s <= b.time.p90_s));
        table.check().unwrap();

        let json = table.to_json().unwrap();
        assert!(json.contains("\"median_s\""), "{json}");
        let back = ProfileTable::from_json(&json, "test").unwrap();
        assert_same_table(&back, &table);

        let path =
            std::env::temp_dir().join(format!("coinfer-profile-{}.json", std::process::id()));
        table.save(&path).unwrap();
        let loaded = ProfileTable::load(&path).unwrap();
        std::fs::remove_file(&path).ok();
        assert_same_table(&loaded, &table);
    }

    /// Equal up to the last bit of float parsing (serde_json's default float parser may differ
    /// from the shortest representation by one ulp).
    fn assert_same_table(a: &ProfileTable, b: &ProfileTable) {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
        assert_eq!(
            (
                &a.network,
                &a.spec,
                &a.backend,
                a.batch_size,
                a.warmup,
                a.repeats
            ),
            (
                &b.network,
                &b.spec,
                &b.backend,
                b.batch_size,
                b.warmup,
                b.repeats
            )
        );
        assert_eq!(a.blocks.len(), b.blocks.len());
        for (x, y) in a.blocks.iter().zip(&b.blocks) {
            assert_eq!(
                (x.index, &x.kind, x.output, x.flops),
                (y.index, &y.kind, y.output, y.flops)
            );
            assert_eq!(x.time.samples, y.time.samples);
            assert!(close(x.time.median_s, y.time.median_s), "{x:?} vs {y:?}");
            assert!(close(x.time.p10_s, y.time.p10_s), "{x:?} vs {y:?}");
            assert!(close(x.time.p90_s, y.time.p90_s), "{x:?} vs {y:?}");
        }
    }

    #[test]
    fn bad_measure_options_are_rejected() {
        let device = Device::flex();
        let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
        for (config, field) in [
            (MeasureConfig::new().with_batch_size(0), "batch_size"),
            (MeasureConfig::new().with_repeats(0), "repeats"),
        ] {
            match measure_blocks(&net, &config, &device) {
                Err(ProfileError::InvalidOption { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn table_with_negative_time_is_rejected_naming_the_row() {
        let mut table = synthetic_table(&zoo::resnet_mini(10));
        table.blocks[3].time.median_s = -1.0;
        match table.check() {
            Err(ProfileError::InvalidValue { field, .. }) => {
                assert_eq!(field, "blocks[3].median_s")
            }
            other => panic!("unexpected {other:?}"),
        }
        table.blocks[3].time.median_s = f64::NAN;
        assert!(matches!(
            table.check(),
            Err(ProfileError::InvalidValue { .. })
        ));
    }

    #[test]
    fn table_with_missing_rows_or_wrong_kinds_is_rejected() {
        let spec = zoo::resnet_mini(10);
        let mut table = synthetic_table(&spec);
        table.blocks.pop();
        assert!(matches!(
            table.check(),
            Err(ProfileError::TableMismatch { .. })
        ));

        let mut table = synthetic_table(&spec);
        table.blocks[2].kind = "linear".into();
        let err = table.check().unwrap_err();
        assert!(err.to_string().contains("row 2"), "{err}");

        let mut table = synthetic_table(&spec);
        table.blocks[0].flops += 1;
        assert!(matches!(
            table.check(),
            Err(ProfileError::TableMismatch { .. })
        ));
    }

    #[test]
    fn table_does_not_cost_another_network() {
        let table = synthetic_table(&zoo::resnet_mini(10));
        // Different block count.
        let err = table.block_times_for(&zoo::resnet18_cifar(10)).unwrap_err();
        assert!(matches!(err, ProfileError::TableMismatch { .. }), "{err}");
        // Same count, a different stride in block 3.
        let mut spec = zoo::resnet_mini(10);
        if let BlockSpec::BasicBlock { stride, .. } = &mut spec.blocks[3] {
            *stride = 2;
        }
        let err = table.block_times_for(&spec).unwrap_err();
        assert!(err.to_string().contains("block 3"), "{err}");
        // Another input.
        let mut spec = zoo::resnet_mini(10);
        spec.input = FeatureShape::image(3, 28, 28);
        assert!(matches!(
            table.block_times_for(&spec),
            Err(ProfileError::TableMismatch { .. })
        ));
    }

    #[test]
    fn pruned_blocks_are_scaled_by_flops() {
        let spec = zoo::resnet_mini(10);
        let table = synthetic_table(&spec);
        let mut pruned = spec.clone();
        if let BlockSpec::BasicBlock { mid_channels, .. } = &mut pruned.blocks[2] {
            *mid_channels = 16;
        }
        let times = table.block_times_for(&pruned).unwrap();
        let ratio = NetCost::of(&pruned).unwrap().blocks[2].flops as f64
            / NetCost::of(&spec).unwrap().blocks[2].flops as f64;
        assert!(ratio < 1.0);
        assert!((times[2] - 1e-3 * ratio).abs() < 1e-12);
        assert_eq!(times[3], 1e-3);
        // Flatten has no FLOPs: kept as measured.
        assert_eq!(spec.blocks[5], BlockSpec::Flatten);
        assert_eq!(times[5], 1e-3);
    }

    #[test]
    fn backend_name_is_readable() {
        let name = backend_name(&Device::flex());
        assert!(!name.starts_with("Device<"), "{name}");
        assert!(!name.is_empty());
    }
}
