//! `coinfer profile`: measures the per-block latency of a backbone on the machine it runs on
//! and writes a compute profile that `coinfer search --device FILE` (or `--edge FILE`) reads.

use std::error::Error;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use clap::Args;
use coinfer_automl::profile::ComputeProfile;
use coinfer_automl::profile::{MeasureConfig, ProfileTable, measure_blocks};
use coinfer_automl::split::{Network, zoo};

use crate::backend::BackendChoice;

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Options of `coinfer profile`.
#[derive(Args, Debug)]
pub struct ProfileArgs {
    /// Backbone from the zoo (timing does not depend on the weights), or an ONNX file.
    #[arg(long, default_value = "resnet-mini")]
    model: String,
    /// Classes of the zoo backbone's head.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Profile this saved network (`Network::save` file, e.g. a search's backbone cache)
    /// instead of a zoo backbone.
    #[arg(long)]
    network: Option<PathBuf>,
    /// burn backend to measure (must be compiled in: cargo features flex, ndarray, wgpu).
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendChoice,
    /// The profile JSON to write (the batch-1 profile; see --batch-sizes).
    #[arg(long, default_value = "profile.json")]
    out: PathBuf,
    /// Untimed warm-up runs per block.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed runs per block; the profile keeps their median.
    #[arg(long, default_value_t = 50)]
    repeats: usize,
    /// Further batch sizes to measure, each written next to --out as `<stem>-b<N>.json`
    /// (the search's latency model is per request, so it uses the batch-1 file).
    #[arg(long, value_delimiter = ',')]
    batch_sizes: Vec<usize>,
}

/// The network to measure: the saved one, or a zoo backbone with seeded random weights.
fn network(args: &ProfileArgs, device: &Device) -> CliResult<Network> {
    if let Some(path) = &args.network {
        return Ok(Network::load(path, device)?);
    }
    if let Some(imported) = coinfer_onnx::import_model_arg(&args.model, None, device)? {
        return Ok(imported.network);
    }
    let spec = zoo::by_name(&args.model, args.classes).ok_or_else(|| {
        format!(
            "unknown model `{}` (known: {:?})",
            args.model,
            zoo::MODEL_NAMES
        )
    })?;
    device.seed(0);
    Ok(Network::new(spec, device)?)
}

/// `out` for batch 1, `<stem>-b<N>.<ext>` beside it for other batch sizes.
fn out_path(out: &Path, batch_size: usize) -> PathBuf {
    if batch_size == 1 {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("profile");
    let ext = out.extension().and_then(|s| s.to_str()).unwrap_or("json");
    out.with_file_name(format!("{stem}-b{batch_size}.{ext}"))
}

/// Writes a measured table as the compute profile `search --device/--edge FILE` reads.
pub fn write_profile(table: ProfileTable, path: &Path) -> CliResult<ComputeProfile> {
    let profile = ComputeProfile::measured(table)?;
    let json = serde_json::to_string_pretty(&profile)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(profile)
}

/// Measures and writes the profiles; one JSON line per block and per batch size on stdout.
pub fn run(args: ProfileArgs) -> CliResult<()> {
    let device = args.backend.device()?;
    let net = network(&args, &device)?;
    let mut batch_sizes = vec![1];
    batch_sizes.extend(args.batch_sizes.iter().copied().filter(|&b| b != 1));
    batch_sizes.dedup();
    for batch_size in batch_sizes {
        let config = MeasureConfig::new()
            .with_batch_size(batch_size)
            .with_warmup(args.warmup)
            .with_repeats(args.repeats);
        eprintln!(
            "measuring {} on {} at batch {batch_size}: {} blocks, {} warm-up + {} timed runs each...",
            net.spec().name,
            args.backend.name(),
            net.spec().blocks.len(),
            args.warmup,
            args.repeats
        );
        let table = measure_blocks(&net, &config, &device)?;
        for row in &table.blocks {
            println!(
                "{}",
                serde_json::json!({
                    "network": table.network, "backend": table.backend, "batch": batch_size,
                    "block": row.index, "kind": row.kind, "mflops": row.flops as f64 / 1e6,
                    "median_ms": row.time.median_s * 1e3, "p10_ms": row.time.p10_s * 1e3,
                    "p90_ms": row.time.p90_s * 1e3,
                })
            );
        }
        let total_ms = table.total_median_s() * 1e3;
        let path = out_path(&args.out, batch_size);
        write_profile(table.clone(), &path)?;
        println!(
            "{}",
            serde_json::json!({
                "network": table.network, "backend": table.backend, "batch": batch_size,
                "block": "all", "median_ms": total_ms, "profile": path.display().to_string(),
            })
        );
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coinfer_automl::ComputeSource;

    fn compute_profile(
        name: &str,
        table: &ProfileTable,
    ) -> Result<ComputeProfile, coinfer_automl::AutomlError> {
        name.parse::<ComputeSource>()?.resolve(Some(table))
    }

    fn tiny() -> MeasureConfig {
        MeasureConfig::new().with_warmup(1).with_repeats(3)
    }

    #[test]
    fn a_written_profile_costs_blocks_exactly_as_this_machine_does() {
        let device = Device::flex();
        device.seed(0);
        let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
        let table = measure_blocks(&net, &tiny(), &device).unwrap();
        let path =
            std::env::temp_dir().join(format!("coinfer-profile-{}.json", std::process::id()));
        write_profile(table.clone(), &path).unwrap();
        let from_file = compute_profile(path.to_str().unwrap(), &table).unwrap();
        let this_machine = compute_profile("this-machine", &table).unwrap();
        let spec = net.spec();
        assert_eq!(
            from_file.block_times(spec).unwrap(),
            this_machine.block_times(spec).unwrap()
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn the_profile_measures_the_blocks_search_measures() {
        let device = Device::flex();
        device.seed(0);
        let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
        let args = ProfileArgs {
            model: "resnet-mini".into(),
            classes: 10,
            network: None,
            backend: BackendChoice::Flex,
            out: std::env::temp_dir()
                .join(format!("coinfer-profile-run-{}.json", std::process::id())),
            warmup: 1,
            repeats: 3,
            batch_sizes: vec![2],
        };
        run(args).unwrap();
        let dir = std::env::temp_dir();
        let out = dir.join(format!("coinfer-profile-run-{}.json", std::process::id()));
        let searched = measure_blocks(&net, &MeasureConfig::new(), &device).unwrap();
        for (path, batch) in [(out.clone(), 1), (out_path(&out, 2), 2)] {
            let text = std::fs::read_to_string(&path).unwrap();
            let ComputeProfile::Measured { table } = serde_json::from_str(&text).unwrap() else {
                panic!("{} is not a measured profile", path.display());
            };
            assert_eq!(table.batch_size, batch);
            assert_eq!(table.spec, searched.spec);
            assert_eq!(table.repeats, 3);
            for (a, b) in table.blocks.iter().zip(&searched.blocks) {
                assert_eq!(
                    (a.index, &a.kind, a.output, a.flops),
                    (b.index, &b.kind, b.output, b.flops)
                );
                assert!(a.time.p10_s <= a.time.median_s && a.time.median_s <= a.time.p90_s);
            }
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn an_unknown_model_is_named_in_the_error() {
        let args = ProfileArgs {
            model: "alexnet".into(),
            classes: 10,
            network: None,
            backend: BackendChoice::Flex,
            out: "unused.json".into(),
            warmup: 1,
            repeats: 1,
            batch_sizes: vec![],
        };
        let err = network(&args, &Device::flex()).unwrap_err();
        assert!(err.to_string().contains("alexnet"), "{err}");
    }
}
