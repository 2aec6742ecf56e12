//! The device and edge halves of the default backbone in inference form (batch norm folded),
//! at batch 1 (one request) and batch 64 (an edge server's batch), one thread and all cores.
//!
//! ```text
//! cargo bench --bench halves
//! ```
//!
//! For burn next to PyTorch and ONNX Runtime on the same network, run
//! `cargo run --release --example inference_peers -- --json`.

use std::time::Duration;

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_split::{Network, Threads, inference::InferenceNetwork, zoo};
use criterion::{Criterion, criterion_group, criterion_main};

fn halves(c: &mut Criterion) {
    let device = Device::flex();
    device.seed(1);
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap().valid();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut group = c.benchmark_group("halves");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for threads in [1, cores] {
        let pool = Threads::new(threads).unwrap();
        for batch in [1, 64] {
            let x =
                Tensor::<4>::random([batch, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
            for split in [1, 3, 5] {
                let (device_half, edge_half) = net.clone().split(split).unwrap();
                let device_half = InferenceNetwork::from_network(&device_half).unwrap();
                let edge_half = InferenceNetwork::from_network(&edge_half).unwrap();
                let feature = device_half.forward(x.clone()).unwrap();
                let id = |half: &str| format!("{half}/split{split}/batch{batch}/threads{threads}");
                group.bench_function(id("device"), |b| {
                    b.iter(|| pool.install(|| device_half.forward(x.clone()).unwrap().into_data()))
                });
                group.bench_function(id("edge"), |b| {
                    b.iter(|| {
                        pool.install(|| edge_half.forward(feature.clone()).unwrap().into_data())
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, halves);
criterion_main!(benches);
