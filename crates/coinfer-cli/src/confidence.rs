//! `coinfer confidence`: what a validation set of a given size buys (the library's
//! [`validation_power`]), as JSON lines and a Markdown table.

use clap::Args;
use coinfer_automl::evaluator::validation_power;
use coinfer_automl::{DEFAULT_CONFIDENCE, DEFAULT_TOLERANCE};

type CliResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Options of `coinfer confidence`.
#[derive(Args)]
pub struct ConfidenceArgs {
    /// Validation set sizes (comma separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500,1000,2000,5000,10000"
    )]
    validation_images: Vec<u32>,
    /// Discordant images (the plan right where the backbone is wrong, or the reverse), in
    /// percent of the validation images (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
    discordant_percent: Vec<f64>,
    /// The accepted accuracy drop, in points (`search --tolerance-points`).
    #[arg(long, default_value_t = 100.0 * DEFAULT_TOLERANCE)]
    tolerance_points: f32,
    /// The confidence of the one-sided bound the search decides on.
    #[arg(long, default_value_t = (f64::from(DEFAULT_CONFIDENCE) * 1e6).round() / 1e6)]
    confidence: f64,
}

/// Prints one JSON line per (size, discordance), then the table.
pub fn run(args: ConfidenceArgs) -> CliResult<()> {
    if !(args.confidence > 0.0 && args.confidence < 1.0) {
        return Err(format!("--confidence must be in (0, 1), got {}", args.confidence).into());
    }
    if !(args.tolerance_points.is_finite() && args.tolerance_points >= 0.0) {
        return Err(format!(
            "--tolerance-points must be finite and non-negative, got {}",
            args.tolerance_points
        )
        .into());
    }
    if let Some(bad) = args
        .discordant_percent
        .iter()
        .find(|p| !(p.is_finite() && (0.0..=100.0).contains(*p)))
    {
        return Err(format!("--discordant-percent {bad} is outside 0..=100").into());
    }
    if args.validation_images.contains(&0) {
        return Err("--validation-images: a validation set needs at least 1 image".into());
    }
    let tolerance = args.tolerance_points / 100.0;
    let mut table = format!(
        "| validation images | floor (pt) | {} |\n|---|---|{}\n",
        args.discordant_percent
            .iter()
            .map(|p| format!("{p} % discordant: accepts net lost images (pt)"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(args.discordant_percent.len())
    );
    for &images in &args.validation_images {
        let mut row = Vec::new();
        let mut floor = 0.0;
        for &percent in &args.discordant_percent {
            let power =
                validation_power(images, percent / 100.0, args.confidence as f32, tolerance);
            let accepts = power.accepts_net_loss.unwrap_or(0);
            floor = power.floor_points;
            println!(
                "{}",
                serde_json::json!({
                    "validation_images": images,
                    "discordant_percent": percent,
                    "discordant_images": power.lost + power.gained,
                    "confidence": args.confidence,
                    "tolerance_points": args.tolerance_points,
                    "accepts_net_loss_images": accepts,
                    "accepts_net_loss_points": 100.0 * accepts as f64 / f64::from(images),
                    "bound_margin_points": power.upper_bound_points - power.drop_points,
                    "floor_points": power.floor_points,
                })
            );
            row.push(format!(
                "{accepts} ({:.2})",
                100.0 * accepts as f64 / f64::from(images)
            ));
        }
        table.push_str(&format!(
            "| {images} | {floor:.2} | {} |\n",
            row.join(" | ")
        ));
    }
    println!(
        "\nA plan passes a {}-point tolerance at {:.0} % confidence only when it loses at most \
         this many more images than it gains (floor: the bound of one lost image):\n",
        args.tolerance_points,
        100.0 * args.confidence
    );
    print!("{table}");
    Ok(())
}
