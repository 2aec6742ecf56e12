//! Profiles a backbone block by block on this machine and prints the predicted end-to-end
//! latency at every split point for the shipped link presets.
//!
//! ```text
//! cargo run --release -p coinfer-profile --example profile
//! cargo run --release -p coinfer-profile --example profile -- --device device-10gflops --bits 8
//! cargo run --release -p coinfer-profile --example profile -- --save-table results/profile/flex.json
//! ```
//!
//! The backbone is `resnet-mini` (or `--model resnet18-cifar`); the trained
//! `results/backbone/resnet-mini-subset.cfnet` is used when it exists (weights do not change
//! the timing). Split 0 sends the raw 8-bit image; other splits send the cut activation at
//! `--bits` bits per element (32: uncompressed float32, no codec; fewer: uniform quantisation
//! whose encode/decode time is estimated from its FLOPs).

use std::path::PathBuf;

use burn::prelude::*;
use clap::Parser;
use coinfer_profile::preset::{DEVICE_PRESETS, LINK_PRESETS};
use coinfer_profile::{
    CodecCompute, ComputeProfile, LatencyModel, LinkProfile, MeasureConfig, NetCost, PlanCost,
    ProfileTable, backend_name, measure_blocks, measure_forward,
};
use coinfer_split::{Network, zoo};

#[derive(Parser, Debug)]
#[command(about = "Per-block profile and split-point latency of a coinfer backbone")]
struct Args {
    /// Zoo model: resnet-mini or resnet18-cifar.
    #[arg(long, default_value = "resnet-mini")]
    model: String,
    /// Saved network (.cfnet); default: results/backbone/resnet-mini-subset.cfnet if present.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Device compute preset.
    #[arg(long, default_value = "device-1gflops")]
    device: String,
    /// Edge compute preset.
    #[arg(long, default_value = "edge-gpu")]
    edge: String,
    /// Bits per element of the cut feature (32 = raw float32; 1..=8 = uniform quantisation).
    #[arg(long, default_value_t = 32)]
    bits: u64,
    /// Untimed warm-up runs per block.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Timed runs per block.
    #[arg(long, default_value_t = 50)]
    repeats: usize,
    /// Reuse a saved profile table instead of measuring.
    #[arg(long)]
    table: Option<PathBuf>,
    /// Save the measured profile table as JSON.
    #[arg(long)]
    save_table: Option<PathBuf>,
}

fn default_weights(model: &str) -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../results/backbone/resnet-mini-subset.cfnet"
    ));
    (model == "resnet-mini" && path.exists()).then_some(path)
}

/// Bits on the wire at `split`: the raw 8-bit image at 0, the cut at `bits` per element after.
fn payload_bits(
    cost: &NetCost,
    split: usize,
    bits: u64,
) -> Result<u64, Box<dyn std::error::Error>> {
    let elements = cost.cut_elements(split)?;
    Ok(if split == 0 {
        8 * elements
    } else {
        bits * elements
    })
}

/// Uniform quantisation: encode ≈ min/max scan, scale, round (4 FLOPs/element); decode ≈ scale
/// and shift (2 FLOPs/element). Nothing for raw float32 or the raw image.
fn codec(
    cost: &NetCost,
    split: usize,
    bits: u64,
) -> Result<(CodecCompute, CodecCompute), Box<dyn std::error::Error>> {
    let elements = cost.cut_elements(split)?;
    if split == 0 || bits >= 32 {
        return Ok((CodecCompute { flops: 0 }, CodecCompute { flops: 0 }));
    }
    Ok((
        CodecCompute {
            flops: 4 * elements,
        },
        CodecCompute {
            flops: 2 * elements,
        },
    ))
}

fn plan_total(
    model: &LatencyModel,
    net: &coinfer_split::NetSpec,
    cost: &NetCost,
    split: usize,
    bits: u64,
) -> Result<coinfer_profile::Breakdown, Box<dyn std::error::Error>> {
    let (enc, dec) = codec(cost, split, bits)?;
    let (encode_s, decode_s) = model.codec_times(&enc, &dec);
    let plan = PlanCost {
        network: net,
        split,
        payload_bits: payload_bits(cost, split, bits)?,
        encode_s,
        decode_s,
    };
    Ok(model.predict(&plan)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !(1..=32).contains(&args.bits) {
        return Err(format!("--bits must be in 1..=32, got {}", args.bits).into());
    }
    let device = Device::flex();
    device.seed(0);
    let weights = args
        .weights
        .clone()
        .or_else(|| default_weights(&args.model));
    let net = match &weights {
        Some(path) => Network::load(path, &device)?,
        None => {
            let spec = zoo::by_name(&args.model, 10).ok_or_else(|| {
                format!(
                    "unknown model {}; known: {:?}",
                    args.model,
                    zoo::MODEL_NAMES
                )
            })?;
            Network::new(spec, &device)?
        }
    };
    let spec = net.spec().clone();
    let cost = NetCost::of(&spec)?;
    let config = MeasureConfig::new()
        .with_warmup(args.warmup)
        .with_repeats(args.repeats);
    let table = match &args.table {
        Some(path) => ProfileTable::load(path)?,
        None => measure_blocks(&net, &config, &device)?,
    };
    if let Some(path) = &args.save_table {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        table.save(path)?;
        println!("saved the profile table to {}", path.display());
    }
    let whole = measure_forward(&net, &config, &device)?;

    println!("# {} on {}", spec.name, backend_name(&device));
    println!(
        "weights: {}; batch {}, {} warm-up + {} timed runs per block (median, p10–p90)\n",
        weights
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "random (timing does not depend on them)".into()),
        table.batch_size,
        table.warmup,
        table.repeats
    );
    println!("| block | kind | output | MFLOPs | params | activation KB | measured ms (p10–p90) |");
    println!("|---:|---|---|---:|---:|---:|---:|");
    for (b, t) in cost.blocks.iter().zip(&table.blocks) {
        let [c, h, w] = b.output.dims();
        println!(
            "| {} | {} | {}×{}×{} | {:.3} | {} | {:.2} | {:.4} ({:.4}–{:.4}) |",
            b.index,
            b.kind,
            c,
            h,
            w,
            b.flops as f64 / 1e6,
            b.params,
            b.activation_bytes as f64 / 1024.0,
            t.time.median_s * 1e3,
            t.time.p10_s * 1e3,
            t.time.p90_s * 1e3
        );
    }
    let totals = cost.totals();
    println!(
        "| all | | | {:.3} | {} | | {:.4} |",
        totals.flops as f64 / 1e6,
        totals.params,
        table.total_median_s() * 1e3
    );
    let here = ComputeProfile::preset("this-machine", Some(&table))?;
    println!(
        "\nwhole network as one forward pass: {:.4} ms median ({:.4}–{:.4}); sum of block medians \
         {:.4} ms; this machine's effective throughput {:.2} GFLOP/s",
        whole.median_s * 1e3,
        whole.p10_s * 1e3,
        whole.p90_s * 1e3,
        table.total_median_s() * 1e3,
        here.effective_flops_per_s() / 1e9
    );

    let payload_note = if args.bits >= 32 {
        "raw float32 cut (no codec)".to_string()
    } else {
        format!(
            "{}-bit uniform quantisation of the cut (codec time estimated from FLOPs)",
            args.bits
        )
    };
    println!(
        "\n## Predicted latency per split: device `{}`, edge `{}`; split 0 sends the 8-bit image, \
         other splits the {payload_note}",
        args.device, args.edge
    );
    for link_name in LINK_PRESETS {
        let link = LinkProfile::preset(link_name)?;
        let model = LatencyModel::new(
            ComputeProfile::preset(&args.device, Some(&table))?,
            link.clone(),
            ComputeProfile::preset(&args.edge, Some(&table))?,
        )?;
        println!(
            "\n### {link_name}: {} Mbit/s, RTT {} ms, {} B per message\n",
            link.rate_bps / 1e6,
            link.rtt_s * 1e3,
            link.per_message_overhead_bytes
        );
        println!(
            "| split | cut | payload KB | device ms | encode ms | transmit ms | RTT ms | decode ms | edge ms | total ms |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let rows = (0..=cost.len())
            .map(|s| plan_total(&model, &spec, &cost, s, args.bits))
            .collect::<Result<Vec<_>, _>>()?;
        let best = rows
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total.total_cmp(&b.1.total))
            .map(|(s, _)| s)
            .unwrap_or(0);
        for (s, t) in rows.iter().enumerate() {
            let [c, h, w] = cost.cut_shape(s)?.dims();
            let payload = if s == cost.len() {
                0.0
            } else {
                payload_bits(&cost, s, args.bits)? as f64 / 8.0 / 1024.0
            };
            println!(
                "| {s}{} | {c}×{h}×{w} | {payload:.2} | {:.3} | {:.3} | {:.3} | {:.1} | {:.3} | {:.3} | {:.3} |",
                if s == best { " *" } else { "" },
                t.device * 1e3,
                t.encode * 1e3,
                t.transmit * 1e3,
                t.rtt * 1e3,
                t.decode * 1e3,
                t.edge * 1e3,
                t.total * 1e3
            );
        }
    }

    println!(
        "\n## Best split per device preset and link (edge `{}`)\n",
        args.edge
    );
    println!("| device | {} |", LINK_PRESETS.join(" | "));
    println!("|---|{}", "---|".repeat(LINK_PRESETS.len()));
    for device_name in DEVICE_PRESETS {
        let mut cells = Vec::new();
        for link_name in LINK_PRESETS {
            let model = LatencyModel::new(
                ComputeProfile::preset(device_name, Some(&table))?,
                LinkProfile::preset(link_name)?,
                ComputeProfile::preset(&args.edge, Some(&table))?,
            )?;
            let (best, t) = (0..=cost.len())
                .map(|s| plan_total(&model, &spec, &cost, s, args.bits).map(|t| (s, t.total)))
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, f64::NAN));
            cells.push(format!("s = {best}: {:.3} ms", t * 1e3));
        }
        println!("| {device_name} | {} |", cells.join(" | "));
    }
    Ok(())
}
