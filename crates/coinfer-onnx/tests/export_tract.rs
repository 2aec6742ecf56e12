//! Exported halves, run by tract (an independent ONNX runtime) and chained through the
//! quantization `codec.json` describes, give coinfer's own deployed logits to 1e-4: every zoo
//! model and the imported fixtures, at two split points each, with a pruned plan, a learned
//! (spatial, batch-normed) codec and the fixed quantizers.

mod common;

use burn::prelude::*;
use coinfer_codec::{AutoencoderCodec, AutoencoderConfig, CodecId, fixed_codec};
use coinfer_data::Normalization;
use coinfer_onnx::{CodecManifest, ExportCodec, ImportOptions, Quantization, export, import};
use coinfer_sparsity::{PruneRatios, prune};
use coinfer_split::inference::InferenceNetwork;
use coinfer_split::{Network, zoo};
use common::*;

/// Quantizes and dequantizes `values` (`[n, c, h, w]`) exactly as the manifest says.
fn through_manifest(values: &[f32], dims: [usize; 4], q: &Quantization) -> Vec<f32> {
    let [n, c, h, w] = dims;
    let plane = h * w;
    let ranges: Vec<(f32, f32)> = match q.ranges.as_str() {
        "fixed" => vec![(q.min.unwrap(), q.max.unwrap()); c],
        "per_tensor" => {
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            vec![(lo, hi); c]
        }
        "per_channel" => (0..c)
            .map(|ch| {
                let it = (0..n).flat_map(|b| {
                    values[(b * c + ch) * plane..(b * c + ch + 1) * plane]
                        .iter()
                        .copied()
                });
                it.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
            })
            .collect(),
        other => panic!("unknown ranges {other}"),
    };
    let top = ((1u32 << q.bits) - 1) as f32;
    let mut out = vec![0.0; values.len()];
    for (i, (&x, o)) in values.iter().zip(&mut out).enumerate() {
        let (lo, hi) = ranges[(i / plane) % c];
        let step = (hi - lo) / top;
        let step = if step >= f32::MIN_POSITIVE { step } else { 0.0 };
        let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
        let v = ((x - lo) * inv + 0.5).clamp(0.0, top);
        let symbol = v as i32 as f32;
        *o = lo + symbol * step;
    }
    out
}

enum Codec {
    Fixed(CodecId),
    /// Autoencoder: ratio, bits, kernel, stride, batch norm.
    Learned(usize, u8, usize, usize, bool),
}

struct Case {
    name: &'static str,
    net: Network,
    norm: Normalization,
    at: usize,
    prune: f32,
    codec: Codec,
}

fn images(shape: [usize; 3], norm: &Normalization, n: usize, device: &Device) -> Tensor<4> {
    if shape == [1, 28, 28] {
        batch(&test_images(), 0..n, norm, device).0
    } else {
        // No CIFAR images are embedded; the CIFAR-shaped zoo models get reproducible noise.
        device.seed(11);
        Tensor::random(
            [n, shape[0], shape[1], shape[2]],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        )
    }
}

fn check(case: Case, device: &Device) {
    let Case {
        name,
        net,
        norm,
        at,
        prune: ratio,
        codec,
    } = case;
    let net = if ratio > 0.0 {
        prune(&net, &PruneRatios::Uniform(ratio)).unwrap()
    } else {
        net
    };
    let (device_half, edge_half) = net.split(at).unwrap();
    let cut = *device_half.spec().shapes().unwrap().last().unwrap();
    let learned = match codec {
        Codec::Learned(ratio, bits, kernel, stride, bn) => {
            device.seed(7);
            let config = AutoencoderConfig::new(cut.channels, ratio)
                .with_bits(bits)
                .with_kernel(kernel)
                .with_stride(stride)
                .with_batch_norm(bn);
            Some(AutoencoderCodec::init(config, device).unwrap())
        }
        Codec::Fixed(_) => None,
    };
    let (shared, export_codec) = match (&codec, &learned) {
        (Codec::Fixed(id), _) => (fixed_codec(*id).unwrap(), ExportCodec::Fixed(*id)),
        (Codec::Learned(..), Some(ae)) => (
            std::sync::Arc::new(ae.clone()) as coinfer_codec::SharedCodec,
            ExportCodec::Learned(ae),
        ),
        _ => unreachable!(),
    };
    let dir = std::env::temp_dir().join(format!(
        "coinfer-onnx-export-{}-{name}-{at}",
        std::process::id()
    ));
    let manifest: CodecManifest =
        export(&device_half, &edge_half, export_codec, Some(&norm), &dir).unwrap();
    let written: CodecManifest =
        serde_json::from_str(&std::fs::read_to_string(dir.join("codec.json")).unwrap()).unwrap();
    assert_eq!(written, manifest);
    assert_eq!(manifest.codec, shared.id());

    // coinfer's deployed halves: inference form, the real codec's payload in between.
    let n = 4;
    let input = device_half.spec().input;
    let x = images(input.dims(), &norm, n, device);
    let device_fast = InferenceNetwork::from_network(&device_half).unwrap();
    let edge_fast = InferenceNetwork::from_network(&edge_half).unwrap();
    let feature = device_fast.forward(x.clone()).unwrap();
    let payload = shared.encode(feature.clone()).unwrap();
    let decoded = shared.decode(&payload.bytes, device).unwrap();
    let coinfer_logits = host2(edge_fast.logits(decoded).unwrap());
    let before_quant = match &learned {
        Some(ae) => host(ae.model().encode_latent(feature)),
        None => host(feature),
    };

    // tract, chained through the manifest's quantization.
    let (between, shape) = manifest.device_output.clone().expect("a device model");
    let (device_out, out_dims) = tract_run(
        &dir.join(manifest.device.as_ref().unwrap()),
        &host(x),
        [n, input.channels, input.height, input.width],
    );
    assert_eq!(
        out_dims,
        [n, shape[0], shape[1], shape[2]],
        "{name}@{at}: {between} shape"
    );
    let d_device = max_abs_diff(&device_out, &before_quant);
    let edge_dims = [n, shape[0], shape[1], shape[2]];
    let edge_in = match &manifest.quantization {
        Some(q) => through_manifest(&device_out, edge_dims, q),
        None => device_out,
    };
    let (tract_logits, logit_dims) = tract_run(
        &dir.join(manifest.edge.as_ref().unwrap()),
        &edge_in,
        edge_dims,
    );
    assert_eq!(logit_dims, [n, edge_half.spec().num_classes().unwrap()]);
    let d_logits = max_abs_diff(&tract_logits, &coinfer_logits);
    println!(
        "{{\"model\":\"{name}\",\"split\":{at},\"prune\":{ratio},\"codec\":\"{}\",\"device_max_abs_diff\":{d_device:e},\"logits_max_abs_diff\":{d_logits:e}}}",
        manifest.codec_name
    );
    assert!(
        d_device <= 1e-4,
        "{name}@{at}: device half differs by {d_device}"
    );
    assert!(
        d_logits <= 1e-4,
        "{name}@{at}: chained logits differ by {d_logits}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn zoo_net(name: &str, seed: u64, device: &Device) -> Network {
    device.seed(seed);
    Network::new(zoo::by_name(name, 10).unwrap(), device)
        .unwrap()
        .valid()
}

fn fixture_net(name: &str, device: &Device) -> Network {
    import(fixture(name), &ImportOptions::default(), device)
        .unwrap()
        .network
        .valid()
}

#[test]
fn exported_halves_run_by_tract_match_coinfer() {
    let device = Device::flex();
    let fm = Normalization::fashion_mnist();
    let cifar = Normalization::cifar10();
    let ae = |ratio, stride| {
        Codec::Learned(ratio, 4, if stride > 1 { 3 } else { 1 }, stride, stride > 1)
    };
    let quant = |bits, per_channel| Codec::Fixed(CodecId::quant(bits, per_channel));
    let cases = vec![
        Case {
            name: "resnet-mini",
            net: zoo_net("resnet-mini", 1, &device),
            norm: fm.clone(),
            at: 2,
            prune: 0.5,
            codec: ae(4, 2),
        },
        Case {
            name: "resnet-mini",
            net: zoo_net("resnet-mini", 1, &device),
            norm: fm.clone(),
            at: 4,
            prune: 0.0,
            codec: quant(4, true),
        },
        Case {
            name: "mobilenetv2-mini",
            net: zoo_net("mobilenetv2-mini", 2, &device),
            norm: fm.clone(),
            at: 3,
            prune: 0.3,
            codec: ae(2, 1),
        },
        Case {
            name: "mobilenetv2-mini",
            net: zoo_net("mobilenetv2-mini", 2, &device),
            norm: fm.clone(),
            at: 6,
            prune: 0.0,
            codec: quant(8, false),
        },
        Case {
            name: "resnet18-cifar",
            net: zoo_net("resnet18-cifar", 3, &device),
            norm: cifar.clone(),
            at: 3,
            prune: 0.5,
            codec: ae(8, 2),
        },
        Case {
            name: "resnet18-cifar",
            net: zoo_net("resnet18-cifar", 3, &device),
            norm: cifar.clone(),
            at: 7,
            prune: 0.0,
            codec: Codec::Fixed(CodecId::Float32),
        },
        Case {
            name: "mobilenetv2-cifar",
            net: zoo_net("mobilenetv2-cifar", 4, &device),
            norm: cifar.clone(),
            at: 4,
            prune: 0.5,
            codec: ae(4, 2),
        },
        Case {
            name: "mobilenetv2-cifar",
            net: zoo_net("mobilenetv2-cifar", 4, &device),
            norm: cifar,
            at: 8,
            prune: 0.0,
            codec: quant(6, true),
        },
        Case {
            name: "resnet_projection",
            net: fixture_net("resnet_projection.onnx", &device),
            norm: fm.clone(),
            at: 2,
            prune: 0.5,
            codec: ae(2, 2),
        },
        Case {
            name: "mobilenetv2_block",
            net: fixture_net("mobilenetv2_block.onnx", &device),
            norm: fm.clone(),
            at: 3,
            prune: 0.0,
            codec: quant(4, true),
        },
        Case {
            name: "plain_cnn",
            net: fixture_net("plain_cnn.onnx", &device),
            norm: fm,
            at: 4,
            prune: 0.25,
            codec: ae(2, 1),
        },
    ];
    for case in cases {
        check(case, &device);
    }
}

#[test]
fn device_only_and_edge_only_plans_export_one_model() {
    let device = Device::flex();
    let norm = Normalization::fashion_mnist();
    let net = zoo_net("resnet-mini", 5, &device);
    let blocks = net.spec().blocks.len();
    let x = images([1, 28, 28], &norm, 3, &device);
    let whole = host2(
        InferenceNetwork::from_network(&net)
            .unwrap()
            .logits(x.clone())
            .unwrap(),
    );

    let (all, none) = net.clone().split(blocks).unwrap();
    let dir = std::env::temp_dir().join(format!("coinfer-onnx-device-only-{}", std::process::id()));
    let m = export(
        &all,
        &none,
        ExportCodec::Fixed(CodecId::Float32),
        Some(&norm),
        &dir,
    )
    .unwrap();
    assert_eq!(
        (m.device.as_deref(), m.edge.as_deref()),
        (Some("device.onnx"), None)
    );
    assert!(!dir.join("edge.onnx").exists());
    let (logits, dims) = tract_run(&dir.join("device.onnx"), &host(x.clone()), [3, 1, 28, 28]);
    assert_eq!(dims, [3, 10]);
    assert!(max_abs_diff(&logits, &whole) <= 1e-4);
    std::fs::remove_dir_all(&dir).ok();

    let (none, all) = net.split(0).unwrap();
    let dir = std::env::temp_dir().join(format!("coinfer-onnx-edge-only-{}", std::process::id()));
    let m = export(
        &none,
        &all,
        ExportCodec::Fixed(CodecId::Float32),
        Some(&norm),
        &dir,
    )
    .unwrap();
    assert_eq!(
        (m.device.as_deref(), m.edge.as_deref()),
        (None, Some("edge.onnx"))
    );
    assert!(!dir.join("device.onnx").exists());
    let (logits, _) = tract_run(&dir.join("edge.onnx"), &host(x), [3, 1, 28, 28]);
    assert!(max_abs_diff(&logits, &whole) <= 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_exported_half_imports_back_into_coinfer() {
    // The exported whole network (device-only) is itself an ONNX model coinfer reads.
    let device = Device::flex();
    let net = fixture_net("resnet_projection.onnx", &device);
    let blocks = net.spec().blocks.len();
    let kinds: Vec<_> = net.spec().blocks.iter().map(|b| b.kind()).collect();
    let (all, none) = net.clone().split(blocks).unwrap();
    let dir = std::env::temp_dir().join(format!("coinfer-onnx-roundtrip-{}", std::process::id()));
    export(
        &all,
        &none,
        ExportCodec::Fixed(CodecId::Float32),
        Some(&Normalization::fashion_mnist()),
        &dir,
    )
    .unwrap();
    let back = import(dir.join("device.onnx"), &ImportOptions::default(), &device).unwrap();
    let back_kinds: Vec<_> = back
        .network
        .spec()
        .blocks
        .iter()
        .map(|b| b.kind())
        .collect();
    assert_eq!(back_kinds, kinds);
    assert_eq!(back.normalization, Some(Normalization::fashion_mnist()));
    let x = images([1, 28, 28], &Normalization::fashion_mnist(), 2, &device);
    let a = host2(net.logits(x.clone()).unwrap());
    let b = host2(back.network.valid().logits(x).unwrap());
    assert!(max_abs_diff(&a, &b) <= 1e-4);
    std::fs::remove_dir_all(&dir).ok();
}
