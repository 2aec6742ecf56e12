//! Spatial (strided, batch-normed) autoencoders: exact shapes back for odd and even sizes,
//! payloads at every bit width, save/load, distillation training, and the typed errors.

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_codec::{
    AutoencoderCodec, AutoencoderConfig, CodecError, FeatureCodec, TrainBatch, TrainOptions,
    train_autoencoder,
};

/// burn's random generator is process-wide and the tests of this file run in parallel: each
/// test holds this lock for its whole run, so that a seeded test draws the same numbers every
/// time.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn spatial(channels: usize, ratio: usize, bits: u8) -> AutoencoderConfig {
    AutoencoderConfig::new(channels, ratio)
        .with_bits(bits)
        .with_kernel(3)
        .with_stride(2)
        .with_batch_norm(true)
}

fn feature(shape: [usize; 4], device: &Device) -> Tensor<4> {
    burn::tensor::activation::relu(Tensor::<4>::random(
        shape,
        Distribution::Normal(0.2, 1.0),
        device,
    ))
}

#[test]
fn round_trip_gives_the_exact_shape_for_odd_and_even_sizes() {
    let _rng = serial();
    let device = Device::default();
    device.seed(11);
    for (shape, latent) in [
        ([2, 8, 7, 7], [2, 2, 4, 4]),
        ([1, 8, 14, 14], [1, 2, 7, 7]),
        ([1, 8, 1, 1], [1, 2, 1, 1]),
        ([3, 8, 5, 8], [3, 2, 3, 4]),
    ] {
        let codec = AutoencoderCodec::init(spatial(8, 4, 4), &device).unwrap();
        let x = feature(shape, &device);
        let payload = codec.encode(x.clone()).unwrap();
        let quantized = codec.decode_latent_quantized(&payload.bytes).unwrap();
        assert_eq!(quantized.shape, latent, "latent of {shape:?}");
        let decoded = codec.decode(&payload.bytes, &device).unwrap();
        assert_eq!(decoded.dims(), shape);
        // The training forward pass has the feature's shape too.
        assert_eq!(codec.model().forward(x).dims(), shape);
    }
}

#[test]
fn every_bit_width_round_trips_and_sizes_come_from_the_payload() {
    let _rng = serial();
    let device = Device::default();
    device.seed(12);
    let x = feature([1, 16, 7, 7], &device);
    let mut sizes = Vec::new();
    for bits in 1..=8u8 {
        let codec = AutoencoderCodec::init(spatial(16, 4, bits), &device).unwrap();
        let payload = codec.encode(x.clone()).unwrap();
        let decoded = codec.decode(&payload.bytes, &device).unwrap();
        assert_eq!(decoded.dims(), [1, 16, 7, 7], "bits {bits}");
        // Decoding is deterministic: the edge sees exactly what the payload says.
        let again = codec.decode(&payload.bytes, &device).unwrap();
        assert_eq!(decoded.into_data(), again.into_data());
        // 4 latent channels of 4×4 at b bits, packed, plus 32 bytes of header and CRC.
        assert_eq!(payload.bits(), 256 + (64 * u64::from(bits)).div_ceil(8) * 8);
        sizes.push(payload.bits());
    }
    assert!(sizes.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn entropy_coding_never_makes_a_spatial_payload_larger() {
    let _rng = serial();
    let device = Device::default();
    device.seed(13);
    let x = feature([4, 16, 14, 14], &device);
    for bits in [2, 4, 8] {
        let packed = AutoencoderCodec::init(spatial(16, 2, bits), &device).unwrap();
        let coded = AutoencoderCodec::new(
            spatial(16, 2, bits).with_entropy(true),
            packed.model().clone(),
        )
        .unwrap();
        let (a, b) = (
            packed.encode(x.clone()).unwrap(),
            coded.encode(x.clone()).unwrap(),
        );
        assert!(
            b.bits() <= a.bits(),
            "bits {bits}: {} > {}",
            b.bits(),
            a.bits()
        );
        let (da, db) = (
            packed.decode(&a.bytes, &device).unwrap(),
            coded.decode(&b.bytes, &device).unwrap(),
        );
        assert_eq!(da.into_data(), db.into_data());
    }
}

#[test]
fn save_and_load_keep_batch_norm_and_stride() {
    let _rng = serial();
    let device = Device::default();
    device.seed(14);
    let dir = std::env::temp_dir().join(format!("coinfer-spatial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("codec.bpk");
    let codec = AutoencoderCodec::init(spatial(8, 2, 3), &device).unwrap();
    codec.save(&path).unwrap();
    let loaded = AutoencoderCodec::load(&path, &device).unwrap();
    assert_eq!(loaded.config(), codec.config());
    let x = feature([2, 8, 7, 7], &device);
    let payload = codec.encode(x.clone()).unwrap();
    assert_eq!(loaded.encode(x).unwrap(), payload);
    assert_eq!(
        loaded.decode(&payload.bytes, &device).unwrap().into_data(),
        codec.decode(&payload.bytes, &device).unwrap().into_data()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stride_other_than_one_or_two_is_a_typed_error() {
    let _rng = serial();
    for stride in [0, 3] {
        let err = spatial(8, 2, 4).with_stride(stride).check().unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::InvalidParameter {
                    field: "stride",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn weights_without_batch_norm_do_not_fit_a_batch_norm_config() {
    let _rng = serial();
    let device = Device::default();
    let plain = AutoencoderConfig::new(8, 2)
        .with_kernel(3)
        .with_stride(2)
        .init(&device)
        .unwrap();
    let err = AutoencoderCodec::new(spatial(8, 2, 4), plain).unwrap_err();
    assert!(matches!(err, CodecError::ShapeMismatch { .. }), "{err}");
}

#[test]
fn distillation_parameters_are_checked() {
    let _rng = serial();
    for bad in [-0.1, 1.5, f32::NAN] {
        let err = TrainOptions::new()
            .with_distill_weight(bad)
            .check()
            .unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidParameter {
                field: "distill_weight",
                ..
            }
        ));
    }
    for bad in [0.0, -1.0, f32::INFINITY] {
        let err = TrainOptions::new()
            .with_temperature(bad)
            .check()
            .unwrap_err();
        assert!(matches!(
            err,
            CodecError::InvalidParameter {
                field: "temperature",
                ..
            }
        ));
    }
}

/// A fixed edge: global average pooling and a linear read-out of the first `classes` channels.
fn edge_forward(x: Tensor<4>, classes: usize) -> Tensor<2> {
    let [batch, channels, _, _] = x.dims();
    x.mean_dim(3)
        .mean_dim(2)
        .reshape([batch, channels])
        .slice([0..batch, 0..classes])
        .mul_scalar(4.0)
}

fn class_batch(device: &Device, batch: usize, seed: usize) -> (Tensor<4>, Tensor<1, Int>) {
    let labels: Vec<i64> = (0..batch).map(|i| ((i * 5 + seed) % 4) as i64).collect();
    let mut values = vec![0.0f32; batch * 8 * 7 * 7];
    for (b, &label) in labels.iter().enumerate() {
        let start = (b * 8 + label as usize) * 49;
        values[start..start + 49].fill(1.0);
    }
    let signal = Tensor::<4>::from_data(TensorData::new(values, [batch, 8, 7, 7]), device);
    let noise = Tensor::<4>::random([batch, 8, 7, 7], Distribution::Normal(0.0, 0.2), device);
    (
        burn::tensor::activation::relu(signal + noise),
        Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), device),
    )
}

#[test]
fn spatial_training_with_distillation_learns_and_checks_teacher_shapes() {
    let _rng = serial();
    let device = Device::default();
    device.seed(15);
    let data: Vec<_> = (0..6).map(|i| class_batch(&device, 32, i)).collect();
    let edge = |x: Tensor<4>| edge_forward(x, 4);
    let options = TrainOptions::new()
        .with_epochs(8)
        .with_lr(1e-2)
        .with_distill_weight(0.5)
        .with_seed(2);
    let config = spatial(8, 2, 4);
    let trained = train_autoencoder(
        &config,
        &device,
        |_| data.clone(),
        &edge,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let (first, last) = (&trained.history[0], trained.history.last().unwrap());
    assert!(last.loss < first.loss, "{first:?} -> {last:?}");
    assert!(last.accuracy > 0.9, "{last:?}");

    // Explicit teacher logits of the wrong width are a typed error, not a panic.
    let wrong: Vec<TrainBatch> = data
        .iter()
        .map(|(x, y)| (x.clone(), y.clone(), Tensor::<2>::zeros([32, 3], &device)).into())
        .collect();
    let err = train_autoencoder(
        &config,
        &device,
        |_| wrong.clone(),
        &edge,
        &options,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            CodecError::ShapeMismatch {
                what: "teacher logits",
                ..
            }
        ),
        "{err}"
    );
}
