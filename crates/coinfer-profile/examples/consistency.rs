//! Does the latency model agree with the clock? For every split point of a backbone, the device
//! half's time predicted from this machine's per-block table (`this-machine`, slowdown 1) is set
//! beside the measured median of running that half as one forward pass.
//!
//! ```text
//! cargo run --release -p coinfer-profile --example consistency
//! cargo run --release -p coinfer-profile --example consistency -- --model resnet18-cifar --repeats 20 --warmup 3
//! ```
//!
//! Prints one JSON object per split on stdout (`split`, `predicted_s`, `measured_s`,
//! `measured_p10_s`, `measured_p90_s`, `ratio` = predicted / measured, `within_20pct`), then a
//! summary object (`worst_ratio`, `splits_within_20pct`); progress goes to stderr. Timing on a
//! shared machine is noisy, so this is a measurement to read, not a test: nothing is asserted.

use burn::prelude::*;
use clap::Parser;
use coinfer_profile::{
    ComputeProfile, LatencyModel, LinkProfile, MeasureConfig, PlanCost, measure_blocks,
    measure_forward,
};
use coinfer_split::{Network, zoo};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Predicted vs measured device-half time at every split point")]
struct Args {
    /// Zoo model: resnet-mini or resnet18-cifar.
    #[arg(long, default_value = "resnet-mini")]
    model: String,
    /// Timed repeats per measurement (medians are reported).
    #[arg(long, default_value_t = 200)]
    repeats: usize,
    /// Untimed warm-up runs before each measurement.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Seed of the random weights (weights do not change the timing).
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let device = Device::flex();
    device.seed(args.seed);
    let spec = zoo::by_name(&args.model, 10).ok_or_else(|| {
        format!(
            "unknown model `{}` (known: {:?})",
            args.model,
            zoo::MODEL_NAMES
        )
    })?;
    let net = Network::new(spec, &device)?;
    let config = MeasureConfig::new()
        .with_warmup(args.warmup)
        .with_repeats(args.repeats);
    eprintln!(
        "measuring the {} blocks of {}...",
        net.spec().blocks.len(),
        args.model
    );
    let table = measure_blocks(&net, &config, &device)?;
    let model = LatencyModel::new(
        ComputeProfile::preset("this-machine", Some(&table))?,
        LinkProfile::preset("link-10mbps")?,
        ComputeProfile::preset("edge-gpu", None)?,
    )?;
    let mut worst = 1.0f64;
    let mut within = 0;
    let splits = 1..=net.spec().blocks.len();
    let count = splits.clone().count();
    for split in splits {
        eprintln!("split {split}/{count}: timing the device half...");
        let (device_half, _) = net.clone().split(split)?;
        let predicted = model
            .predict(&PlanCost::uncompressed(net.spec(), split)?)?
            .device;
        let measured = measure_forward(&device_half, &config, &device)?;
        let ratio = predicted / measured.median_s;
        let ok = (0.8..=1.2).contains(&ratio);
        within += usize::from(ok);
        if (ratio - 1.0).abs() > (worst - 1.0).abs() {
            worst = ratio;
        }
        println!(
            "{}",
            json!({
                "model": args.model,
                "split": split,
                "predicted_s": predicted,
                "measured_s": measured.median_s,
                "measured_p10_s": measured.p10_s,
                "measured_p90_s": measured.p90_s,
                "ratio": ratio,
                "within_20pct": ok,
            })
        );
    }
    println!(
        "{}",
        json!({
            "model": args.model,
            "summary": true,
            "splits": count,
            "splits_within_20pct": within,
            "worst_ratio": worst,
        })
    );
    Ok(())
}
