//! Trains the codec family of every split point of a trained backbone and prints the table
//! (bits per sample, compression against float32, validation accuracy, predicted latency).
//!
//! ```text
//! cargo run --release -p coinfer-automl --example codec_table -- \
//!     results/cache/resnet-mini-fashion-mnist-subset-e8-s1-v500.cfnet [ae_epochs] [ae_lr] [ratios] [kernel]
//! ```
//! The backbone should have been trained without the validation images (the `coinfer search`
//! cache is).

use std::time::Instant;

use coinfer_automl::codecs::CodecSetup;
use coinfer_automl::prelude::*;
use coinfer_automl::profile::ComputeProfile;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).cloned().unwrap_or_else(|| {
        "results/cache/resnet-mini-fashion-mnist-subset-e8-s1-v500.cfnet".into()
    });
    let defaults = CodecSetup::default();
    let epochs: usize = args.get(2).map_or(Ok(defaults.ae_epochs), |s| s.parse())?;
    let lr: f64 = args.get(3).map_or(Ok(defaults.ae_lr), |s| s.parse())?;
    let ratios: Vec<u16> = match args.get(4) {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![2, 4, 8, 16],
    };
    let kernel: usize = args.get(5).map_or(Ok(defaults.ae_kernel), |s| s.parse())?;
    let device = Device::flex();
    let backbone = Network::load(&path, &device)?;
    let config = SearchConfig {
        codecs: CodecSetup {
            ae_epochs: epochs,
            ae_lr: lr,
            ae_ratios: ratios,
            ae_kernel: kernel,
            ..CodecSetup::default()
        },
        seed: 1,
        ..SearchConfig::default()
    };
    let search = CoInference::builder()
        .model(backbone)
        .data(embedded::fashion_mnist_subset()?)
        .device(ComputeProfile::preset("device-1gflops", None)?)
        .link(LinkProfile::preset("link-10mbps")?)
        .edge(ComputeProfile::preset("edge-gpu", None)?)
        .config(config)
        .build()?;
    let start = Instant::now();
    let mut session = search.prepare(|p| {
        eprintln!(
            "trained autoencoder {}/{}: split {} r={} (train accuracy {:.1}%, {:.0} s)",
            p.done,
            p.total,
            p.split,
            p.ratio,
            100.0 * p.train_accuracy,
            start.elapsed().as_secs_f64()
        )
    })?;
    println!(
        "{}",
        coinfer_automl::report::codec_table(session.evaluator())?
    );
    eprintln!("total {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
