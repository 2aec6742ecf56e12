//! `coinfer export`: a deployed plan's halves as ONNX models (docs/onnx.md).

use std::error::Error;
use std::path::PathBuf;

use burn::prelude::Device;
use clap::Args;
use coinfer_automl::SplitPlan;
use coinfer_automl::codec::{AutoencoderCodec, CodecId};

type CliResult<T> = Result<T, Box<dyn Error>>;

/// Write a plan's device half (+ encoder) and edge half as ONNX models.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The plan to export (`results/<run>/plan.json`).
    #[arg(long)]
    plan: PathBuf,
    /// Folder for `device.onnx`, `edge.onnx` and `codec.json` (created if missing).
    #[arg(long)]
    onnx: PathBuf,
}

/// Loads the plan as `serve`/`infer` do and writes its halves; prints the manifest as one
/// JSON line.
pub fn run(args: ExportArgs) -> CliResult<()> {
    let device = Device::flex();
    let deployed = SplitPlan::deploy(&args.plan, &device)?;
    let plan = &deployed.plan;
    let learned = match (
        plan.codec,
        plan.artifacts.as_ref().and_then(|a| a.codec.as_ref()),
    ) {
        (CodecId::Autoencoder { .. }, Some(relative)) => {
            let folder = args.plan.parent().unwrap_or(std::path::Path::new("."));
            Some(AutoencoderCodec::load(&folder.join(relative), &device)?)
        }
        _ => None,
    };
    let codec = match &learned {
        Some(ae) => coinfer_onnx::ExportCodec::Learned(ae),
        None => coinfer_onnx::ExportCodec::Fixed(plan.codec),
    };
    let manifest = coinfer_onnx::export(
        &deployed.device,
        &deployed.edge,
        codec,
        Some(&plan.normalization),
        &args.onnx,
    )?;
    println!("{}", serde_json::to_string(&manifest)?);
    Ok(())
}
