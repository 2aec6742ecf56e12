//! What one request costs on the device at every split point of the default backbone: the
//! device half's forward pass in inference form (as deployed: batch norm folded, CPU kernels)
//! plus encoding the feature (8-bit per-tensor quantizer), batch 1.
//!
//! ```text
//! cargo bench --bench device_half
//! ```

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_automl::codec::{CodecId, fixed_codec};
use coinfer_automl::split::{Network, inference::InferenceNetwork, zoo};
use criterion::{Criterion, criterion_group, criterion_main};

fn device_half(c: &mut Criterion) {
    let device = Device::flex();
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap().valid();
    let codec = fixed_codec(CodecId::quant(8, false)).unwrap();
    let x = Tensor::<4>::random([1, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let mut group = c.benchmark_group("device_half");
    for split in 1..=5 {
        let (half, _) = net.clone().split(split).unwrap();
        let half = InferenceNetwork::from_network(&half).unwrap();
        group.bench_function(format!("split{split}/forward+quant8"), |b| {
            b.iter(|| {
                let feature = half.forward(x.clone()).unwrap();
                codec.encode(feature).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, device_half);
criterion_main!(benches);
