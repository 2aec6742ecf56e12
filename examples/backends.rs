//! Compares burn's CPU backends on the default backbone: forward (batch 1 and 64) and one Adam
//! training step (batch 64), median of repeated runs.
//!
//! ```text
//! cargo run --release --example backends --features ndarray
//! ```

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_split::{Network, zoo};

fn median_ms(mut run: impl FnMut(), repeats: usize) -> f64 {
    run(); // warm-up
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn bench(name: &str, device: &Device) {
    device.seed(1);
    let net = Network::new(zoo::resnet_mini(10), device).expect("zoo spec is valid");
    let eval = net.valid();
    let forward = |batch: usize| {
        let x = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Normal(0.0, 1.0), device);
        median_ms(
            || {
                let y = eval.logits(x.clone()).expect("shapes match");
                let _ = y.into_data();
            },
            20,
        )
    };
    let f1 = forward(1);
    let f64_ = forward(64);

    let ad = device.clone().autodiff();
    let mut module = net.module().clone().train();
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let x = Tensor::<4>::random([64, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new((0..64).map(|i| i % 10).collect::<Vec<i64>>(), [64]),
        &ad,
    );
    let step = median_ms(
        || {
            let y = module.forward(x.clone());
            let loss = loss_fn.forward(y, labels.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &module);
            module = optimizer.step(1e-3, module.clone(), grads);
        },
        10,
    );
    println!("| {name} | {f1:.2} | {f64_:.1} | {step:.1} |");
}

#[allow(deprecated)] // burn-ndarray is deprecated upstream; measured here for comparison.
fn main() {
    println!(
        "| backend | forward, batch 1 (ms) | forward, batch 64 (ms) | Adam step, batch 64 (ms) |"
    );
    println!("|---|---|---|---|");
    bench("flex", &Device::flex());
    bench("ndarray", &Device::ndarray());
}
