//! Learned autoencoder codec: training against a frozen synthetic edge, payload round trip,
//! save/load, and the errors a caller can provoke.

use burn::prelude::*;
use burn::tensor::Distribution;
use coinfer_codec::{
    AutoencoderCodec, AutoencoderConfig, CodecError, CodecId, EpochReport, FeatureCodec,
    QuantCodec, TrainOptions, train_autoencoder,
};

const CHANNELS: usize = 8;

/// burn's random generator is process-wide and the tests of this file run in parallel: each
/// test holds this lock for its whole run, so that a seeded test draws the same numbers every
/// time (they take well under a second together).
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
const CLASSES: usize = 4;
const SIDE: usize = 4;

/// Post-ReLU features whose class `k` lights up channels `2k` and `2k + 1`.
fn synthetic_batch(device: &Device, batch: usize, seed: usize) -> (Tensor<4>, Tensor<1, Int>) {
    let labels: Vec<i64> = (0..batch)
        .map(|i| ((i * 7 + seed * 3) % CLASSES) as i64)
        .collect();
    let noise = Tensor::<4>::random(
        [batch, CHANNELS, SIDE, SIDE],
        Distribution::Normal(0.0, 0.3),
        device,
    );
    let mut signal = vec![0.0f32; batch * CHANNELS * SIDE * SIDE];
    for (b, &label) in labels.iter().enumerate() {
        for c in [2 * label as usize, 2 * label as usize + 1] {
            let start = (b * CHANNELS + c) * SIDE * SIDE;
            signal[start..start + SIDE * SIDE].fill(1.0);
        }
    }
    let signal = Tensor::<4>::from_data(
        TensorData::new(signal, [batch, CHANNELS, SIDE, SIDE]),
        device,
    );
    let feature = burn::tensor::activation::relu(signal + noise);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), device);
    (feature, labels)
}

/// A fixed linear classifier over the globally pooled feature: class `k` reads channels
/// `2k, 2k+1`, plus a little fixed noise.
fn edge_weights(device: &Device) -> Tensor<2> {
    let mut w = vec![0.0f32; CHANNELS * CLASSES];
    for c in 0..CHANNELS {
        for k in 0..CLASSES {
            let structured = if c / 2 == k { 3.0 } else { 0.0 };
            let jitter = (((c * 31 + k * 17) % 13) as f32 - 6.0) * 0.02;
            w[c * CLASSES + k] = structured + jitter;
        }
    }
    Tensor::<2>::from_data(TensorData::new(w, [CHANNELS, CLASSES]), device)
}

fn edge_forward(feature: Tensor<4>, weights: &Tensor<2>) -> Tensor<2> {
    let [batch, channels, _, _] = feature.dims();
    feature
        .mean_dim(3)
        .mean_dim(2)
        .reshape([batch, channels])
        .matmul(weights.clone())
}

fn accuracy(logits: Tensor<2>, labels: Tensor<1, Int>) -> f32 {
    let n = labels.dims()[0];
    let correct = logits
        .argmax(1)
        .reshape([n])
        .equal(labels)
        .int()
        .sum()
        .into_scalar::<i64>();
    correct as f32 / n as f32
}

fn train(
    config: &AutoencoderConfig,
    edge: &dyn Fn(Tensor<4>) -> Tensor<2>,
    epochs: usize,
) -> Result<(AutoencoderCodec, Vec<EpochReport>), CodecError> {
    let device = Device::default();
    device.seed(7);
    let data: Vec<_> = (0..6).map(|i| synthetic_batch(&device, 32, i)).collect();
    let options = TrainOptions::new()
        .with_epochs(epochs)
        .with_lr(1e-2)
        .with_recon_weight(0.1)
        .with_seed(3);
    let mut seen = Vec::new();
    let trained = train_autoencoder(
        config,
        &device,
        |_epoch| data.clone(),
        edge,
        &options,
        &mut |report| seen.push(*report),
    )?;
    assert_eq!(seen, trained.history);
    Ok((trained.codec, trained.history))
}

#[test]
fn training_through_a_frozen_edge_reduces_the_loss_and_restores_accuracy() {
    let _rng = serial();
    let device = Device::default();
    // The caller's edge is an inference copy: plain (non-autodiff) weights act as constants.
    let weights = edge_weights(&device);
    let edge = |x: Tensor<4>| edge_forward(x, &weights);
    let config = AutoencoderConfig::new(CHANNELS, 4)
        .with_bits(2)
        .with_kernel(1);
    let (codec, history) = train(&config, &edge, 12).unwrap();

    let first = history.first().unwrap();
    let last = history.last().unwrap();
    assert!(last.loss < 0.6 * first.loss, "{first:?} -> {last:?}");
    assert!(last.accuracy > 0.9, "{last:?}");

    // The codec in the loop (real quantization, payload bytes) keeps the task solvable.
    device.seed(99);
    let (feature, labels) = synthetic_batch(&device, 64, 11);
    let raw_accuracy = accuracy(edge(feature.clone()), labels.clone());
    let decoded = codec.roundtrip(feature).unwrap();
    let coded_accuracy = accuracy(edge(decoded), labels);
    assert!(raw_accuracy > 0.9, "edge on raw features: {raw_accuracy}");
    assert!(
        coded_accuracy > 0.85,
        "edge on decoded features: {coded_accuracy}"
    );
}

#[test]
fn an_edge_with_autodiff_parameters_trains_too_and_is_not_stepped() {
    let _rng = serial();
    let device = Device::default();
    let weights = edge_weights(&device).autodiff().require_grad();
    let before = weights.clone().inner().into_data();
    let edge = |x: Tensor<4>| edge_forward(x, &weights);
    let config = AutoencoderConfig::new(CHANNELS, 2)
        .with_bits(4)
        .with_kernel(3);
    let (_, history) = train(&config, &edge, 4).unwrap();
    assert!(history.last().unwrap().loss < history[0].loss);
    assert_eq!(weights.clone().inner().into_data(), before);
}

/// A real edge module: conv-bn-relu, global pooling, linear head.
#[derive(Module, Debug)]
struct EdgeNet {
    conv: burn::nn::conv::Conv2d,
    norm: burn::nn::BatchNorm,
    head: burn::nn::Linear,
}

impl EdgeNet {
    fn new(device: &Device) -> Self {
        Self {
            conv: burn::nn::conv::Conv2dConfig::new([CHANNELS, 12], [3, 3])
                .with_padding(burn::nn::PaddingConfig2d::Same)
                .init(device),
            norm: burn::nn::BatchNormConfig::new(12).init(device),
            head: burn::nn::LinearConfig::new(12, CLASSES).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = burn::tensor::activation::relu(self.norm.forward(self.conv.forward(x)));
        let [batch, channels, _, _] = x.dims();
        self.head
            .forward(x.mean_dim(3).mean_dim(2).reshape([batch, channels]))
    }
}

#[test]
fn a_valid_edge_module_with_batch_norm_passes_gradients_and_stays_unchanged() {
    let _rng = serial();
    let device = Device::default();
    device.seed(1);
    // The caller trained the edge on the autodiff device and hands over `valid()`.
    let edge_net = EdgeNet::new(&device.clone().autodiff()).valid();
    let before = edge_net.clone().into_record().into_bytes().unwrap();
    let edge = |x: Tensor<4>| edge_net.forward(x);
    let config = AutoencoderConfig::new(CHANNELS, 2)
        .with_bits(4)
        .with_kernel(1);
    let (_, history) = train(&config, &edge, 6).unwrap();
    assert!(history.iter().all(|r| r.loss.is_finite()));
    assert!(
        history.last().unwrap().task_loss < history[0].task_loss,
        "{history:?}"
    );
    let after = edge_net.clone().into_record().into_bytes().unwrap();
    assert_eq!(&before[..], &after[..]);
}

#[test]
fn an_edge_that_leaves_the_graph_is_an_error_not_a_panic() {
    let _rng = serial();
    let device = Device::default();
    let edge = |x: Tensor<4>| {
        let batch = x.dims()[0];
        Tensor::<2>::zeros([batch, CLASSES], &Device::default())
    };
    let config = AutoencoderConfig::new(CHANNELS, 4);
    let err = train(&config, &edge, 1).unwrap_err();
    assert!(
        matches!(err, CodecError::InvalidParameter { field: "edge", .. }),
        "{err}"
    );
    let _ = device;
}

#[test]
fn training_rejects_bad_batches_and_options() {
    let _rng = serial();
    let device = Device::default();
    let weights = edge_weights(&device);
    let edge = |x: Tensor<4>| edge_forward(x, &weights);
    let config = AutoencoderConfig::new(CHANNELS + 1, 4);
    assert!(matches!(
        train(&config, &edge, 1),
        Err(CodecError::ShapeMismatch { .. })
    ));
    let config = AutoencoderConfig::new(CHANNELS, 4);
    let options = TrainOptions::new().with_epochs(0);
    let result = train_autoencoder(
        &config,
        &device,
        |_| Vec::<(Tensor<4>, Tensor<1, Int>)>::new(),
        &edge,
        &options,
        &mut |_| {},
    );
    assert!(matches!(
        result,
        Err(CodecError::InvalidParameter {
            field: "epochs",
            ..
        })
    ));
    let result = train_autoencoder(
        &config,
        &device,
        |_| Vec::<(Tensor<4>, Tensor<1, Int>)>::new(),
        &edge,
        &TrainOptions::new().with_epochs(1),
        &mut |_| {},
    );
    assert!(matches!(
        result,
        Err(CodecError::InvalidParameter {
            field: "batches",
            ..
        })
    ));
    for bad in [0.0, f64::NAN, -1.0] {
        assert!(TrainOptions::new().with_lr(bad).check().is_err());
    }
    assert!(TrainOptions::new().with_recon_weight(-0.5).check().is_err());
}

#[test]
fn config_checks_each_field() {
    let _rng = serial();
    assert!(AutoencoderConfig::new(0, 4).check().is_err());
    assert!(AutoencoderConfig::new(8, 0).check().is_err());
    assert!(AutoencoderConfig::new(8, 70_000).check().is_err());
    assert!(matches!(
        AutoencoderConfig::new(8, 4).with_bits(9).check(),
        Err(CodecError::BitsOutOfRange { bits: 9, .. })
    ));
    assert!(AutoencoderConfig::new(8, 4).with_kernel(2).check().is_err());
    assert!(AutoencoderConfig::new(8, 4).with_kernel(3).check().is_ok());
}

#[test]
fn payload_round_trip_is_exact_and_sized_as_announced() {
    let _rng = serial();
    let device = Device::default();
    device.seed(5);
    // Every bit width, with and without entropy coding, cycling through the ratios.
    let cases = (1..=8u8).flat_map(|bits| {
        [false, true].map(|entropy| {
            (
                [2, 4, 8, 16][(bits as usize + usize::from(entropy)) % 4],
                bits,
                entropy,
            )
        })
    });
    for (ratio, bits, entropy) in cases {
        let config = AutoencoderConfig::new(16, ratio)
            .with_bits(bits)
            .with_kernel(3)
            .with_entropy(entropy);
        let codec = AutoencoderCodec::init(config, &device).unwrap();
        assert_eq!(
            codec.id(),
            CodecId::Autoencoder {
                ratio: ratio as u16,
                bits,
                entropy,
                kernel: 3,
                stride: 1,
            }
        );
        let feature = Tensor::<4>::random([1, 16, 14, 14], Distribution::Default, &device);
        let payload = codec.encode(feature.clone()).unwrap();
        let bound = codec.bits_per_sample([16, 14, 14]);
        if entropy {
            assert!(payload.bits() <= bound);
        } else {
            assert_eq!(payload.bits(), bound);
        }
        let latent = codec.latent_quantized(feature.clone()).unwrap();
        assert_eq!(
            codec.decode_latent_quantized(&payload.bytes).unwrap(),
            latent
        );
        assert_eq!(latent.shape, [1, 16usize.div_ceil(ratio), 14, 14]);

        let decoded = codec.decode(&payload.bytes, &device).unwrap();
        let expected = codec.model().decode_latent(
            Tensor::<4>::from_data(TensorData::new(latent.dequantize(), latent.shape), &device),
            [14, 14],
        );
        assert_eq!(decoded.dims(), [1, 16, 14, 14]);
        assert_eq!(decoded.clone().into_data(), expected.into_data());
        // Post-ReLU output by default.
        let min = decoded.min().into_scalar::<f32>();
        assert!(min >= 0.0);
    }
}

#[test]
fn save_and_load_reproduce_the_codec() {
    let _rng = serial();
    let device = Device::default();
    device.seed(21);
    let config = AutoencoderConfig::new(8, 4).with_bits(3).with_kernel(3);
    let codec = AutoencoderCodec::init(config.clone(), &device).unwrap();
    let dir = std::env::temp_dir().join(format!("coinfer-codec-ae-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("ae_r4_b3.bpk");
    codec.save(&weights).unwrap();
    assert!(AutoencoderCodec::config_path(&weights).exists());

    let loaded = AutoencoderCodec::load(&weights, &device).unwrap();
    assert_eq!(loaded.config(), &config);
    let feature = Tensor::<4>::random([2, 8, 5, 5], Distribution::Default, &device);
    let a = codec.encode(feature.clone()).unwrap();
    let b = loaded.encode(feature).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        codec.decode(&a.bytes, &device).unwrap().into_data(),
        loaded.decode(&a.bytes, &device).unwrap().into_data()
    );

    // A config whose shapes do not fit the weights is refused.
    let wrong = AutoencoderConfig::new(8, 2).with_bits(3).with_kernel(3);
    std::fs::write(AutoencoderCodec::config_path(&weights), wrong.to_json()).unwrap();
    assert!(matches!(
        AutoencoderCodec::load(&weights, &device),
        Err(CodecError::Record { .. })
    ));
    assert!(matches!(
        AutoencoderCodec::load(&dir.join("missing.bpk"), &device),
        Err(CodecError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn foreign_payloads_and_shapes_are_refused() {
    let _rng = serial();
    let device = Device::default();
    let codec = AutoencoderCodec::init(AutoencoderConfig::new(8, 4).with_bits(4), &device).unwrap();
    let other = AutoencoderCodec::init(AutoencoderConfig::new(8, 2).with_bits(4), &device).unwrap();
    let feature = Tensor::<4>::random([1, 8, 3, 3], Distribution::Default, &device);
    let payload = codec.encode(feature.clone()).unwrap();
    assert!(matches!(
        other.decode(&payload.bytes, &device),
        Err(CodecError::CodecMismatch { .. })
    ));
    assert!(matches!(
        QuantCodec::new(4, false)
            .unwrap()
            .decode(&payload.bytes, &device),
        Err(CodecError::CodecMismatch { .. })
    ));
    let wide = Tensor::<4>::random([1, 9, 3, 3], Distribution::Default, &device);
    assert!(matches!(
        codec.encode(wide),
        Err(CodecError::ShapeMismatch { .. })
    ));
    // A payload from a 16-channel codec with the same r, b: channel check on decode.
    let sixteen =
        AutoencoderCodec::init(AutoencoderConfig::new(16, 4).with_bits(4), &device).unwrap();
    let big = sixteen
        .encode(Tensor::<4>::random(
            [1, 16, 3, 3],
            Distribution::Default,
            &device,
        ))
        .unwrap();
    assert!(matches!(
        codec.decode(&big.bytes, &device),
        Err(CodecError::ShapeMismatch { .. })
    ));
    // Features on an autodiff device encode the same as plain ones.
    let ad = feature.clone().autodiff();
    assert_eq!(codec.encode(ad).unwrap(), payload);
}

#[test]
fn codecs_can_be_shared_across_threads() {
    let _rng = serial();
    fn shareable<T: Send + Sync>() {}
    shareable::<AutoencoderCodec>();
    shareable::<QuantCodec>();
    shareable::<coinfer_codec::Float32Codec>();
}

#[test]
fn the_config_sets_bits_and_relu_of_wrapped_weights() {
    let _rng = serial();
    let device = Device::default();
    let trained_at_two = AutoencoderConfig::new(8, 4).with_bits(2);
    let model = trained_at_two.init(&device).unwrap();
    let eight = AutoencoderCodec::new(trained_at_two.clone().with_bits(8), model.clone()).unwrap();
    assert_eq!(eight.id(), CodecId::autoencoder(4, 8));
    let feature = Tensor::<4>::random([1, 8, 3, 3], Distribution::Default, &device);
    let latent = eight.latent_quantized(feature.clone()).unwrap();
    assert!(
        latent.symbols.iter().any(|s| *s > 3),
        "8-bit symbols expected"
    );
    // Without the output ReLU the reconstruction can go negative.
    let linear = AutoencoderCodec::new(
        trained_at_two.clone().with_output_relu(false),
        model.clone(),
    )
    .unwrap();
    let out = linear.roundtrip(feature).unwrap();
    assert!(out.min().into_scalar::<f32>() < 0.0);
    // Weights of another shape are refused.
    assert!(matches!(
        AutoencoderCodec::new(AutoencoderConfig::new(8, 2), model),
        Err(CodecError::ShapeMismatch { .. })
    ));
}
