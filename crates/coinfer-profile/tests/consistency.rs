//! The latency model agrees with the clock: the device half's time predicted from the per-block
//! table of this machine (`this-machine`, slowdown 1) is within 20% of the time measured for
//! running that half as one forward pass.
//!
//! Timing on a shared machine is noisy, so both sides use medians of many repeats, and the
//! comparison is tried up to three times (fresh measurements each time); it passes when one try
//! agrees. A model that charges per-block set-up, or times the wrong shapes, misses every try.

use burn::prelude::*;
use coinfer_profile::{
    ComputeProfile, LatencyModel, LinkProfile, MeasureConfig, PlanCost, measure_blocks,
    measure_forward,
};
use coinfer_split::{Network, zoo};

#[test]
fn predicted_device_half_matches_its_measured_forward() {
    let device = Device::flex();
    device.seed(7);
    let net = Network::new(zoo::resnet_mini(10), &device).unwrap();
    let split = net.spec().blocks.len() / 2;
    let (device_half, _) = net.clone().split(split).unwrap();
    let config = MeasureConfig::new().with_warmup(20).with_repeats(200);

    let mut tries = Vec::new();
    for _ in 0..3 {
        let table = measure_blocks(&net, &config, &device).unwrap();
        let model = LatencyModel::new(
            ComputeProfile::preset("this-machine", Some(&table)).unwrap(),
            LinkProfile::preset("link-10mbps").unwrap(),
            ComputeProfile::preset("edge-gpu", None).unwrap(),
        )
        .unwrap();
        let plan = PlanCost::uncompressed(net.spec(), split).unwrap();
        let predicted = model.predict(&plan).unwrap().device;
        let measured = measure_forward(&device_half, &config, &device)
            .unwrap()
            .median_s;
        assert!(predicted > 0.0 && measured > 0.0);
        let ratio = predicted / measured;
        tries.push((predicted, measured, ratio));
        if (0.8..=1.2).contains(&ratio) {
            eprintln!("split {split}: (predicted s, measured s, ratio) per try: {tries:?}");
            return;
        }
    }
    panic!(
        "predicted device time at split {split} differs from the measured half by more than 20% \
         in every try (predicted s, measured s, ratio): {tries:?}"
    );
}
