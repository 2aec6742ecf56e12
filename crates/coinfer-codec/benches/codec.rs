//! Encode/decode throughput of every codec kind, in bytes of f32 input per second.
//!
//! Run: `cargo bench -p coinfer-codec -- --warm-up-time 1 --measurement-time 2`
//! Groups: `encode/<shape>` and `decode/<shape>` through the tensor API (flex backend, what a
//! caller pays, host copies included); `kernel/<shape>` on plain slices: the quantize+pack
//! hot path alone and the whole slice-level encode (ranges, quantize, pack, header, CRC).

use std::hint::black_box;

use burn::prelude::*;
use coinfer_codec::pack::{pack, packed_len};
use coinfer_codec::quantize::{quantize_slice, value_range};
use coinfer_codec::{AutoencoderCodec, AutoencoderConfig, FeatureCodec, Float32Codec, QuantCodec};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SHAPES: [[usize; 4]; 2] = [[1, 16, 14, 14], [8, 64, 28, 28]];

fn shape_name(shape: [usize; 4]) -> String {
    format!("{}x{}x{}x{}", shape[0], shape[1], shape[2], shape[3])
}

/// Post-ReLU-like values: about half zeros, the rest spread over [0, 4).
fn feature_values(shape: [usize; 4]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            (u * 8.0 - 4.0).max(0.0)
        })
        .collect()
}

fn codecs(channels: usize, device: &Device) -> Vec<(String, Box<dyn FeatureCodec>)> {
    let mut out: Vec<(String, Box<dyn FeatureCodec>)> =
        vec![("float32".into(), Box::new(Float32Codec))];
    for bits in [2, 4, 8] {
        for per_channel in [false, true] {
            let codec = QuantCodec::new(bits, per_channel).expect("valid bits");
            out.push((codec.id().to_string(), Box::new(codec)));
        }
    }
    let entropy = QuantCodec::new(4, true)
        .expect("valid bits")
        .with_entropy(true);
    out.push((entropy.id().to_string(), Box::new(entropy)));
    device.seed(0);
    let config = AutoencoderConfig::new(channels, 4)
        .with_bits(4)
        .with_kernel(3);
    let ae = AutoencoderCodec::init(config, device).expect("valid config");
    out.push(("ae-r4-b4-k3".into(), Box::new(ae)));
    out
}

fn bench_codecs(c: &mut Criterion) {
    let device = Device::default();
    for shape in SHAPES {
        let values = feature_values(shape);
        let bytes = (values.len() * 4) as u64;
        let feature = Tensor::<4>::from_data(TensorData::new(values.clone(), shape), &device);
        let codecs = codecs(shape[1], &device);

        let mut group = c.benchmark_group(format!("encode/{}", shape_name(shape)));
        group.throughput(Throughput::Bytes(bytes));
        for (name, codec) in &codecs {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| codec.encode(black_box(feature.clone())).expect("encode"))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("decode/{}", shape_name(shape)));
        group.throughput(Throughput::Bytes(bytes));
        for (name, codec) in &codecs {
            let payload = codec.encode(feature.clone()).expect("encode");
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    codec
                        .decode(black_box(&payload.bytes), &device)
                        .expect("decode")
                })
            });
        }
        group.finish();
    }
}

fn bench_kernels(c: &mut Criterion) {
    for shape in SHAPES {
        let values = feature_values(shape);
        let mut group = c.benchmark_group(format!("kernel/{}", shape_name(shape)));
        group.throughput(Throughput::Bytes((values.len() * 4) as u64));
        let range = value_range(&values).expect("finite");
        for bits in [2u8, 4, 8] {
            let mut symbols = vec![0u8; values.len()];
            let mut packed = vec![0u8; packed_len(values.len(), bits).expect("fits")];
            group.bench_function(BenchmarkId::new("quantize+pack", bits), |b| {
                b.iter(|| {
                    quantize_slice(black_box(&values), range, bits, &mut symbols);
                    pack(&symbols, bits, &mut packed).expect("lengths");
                    black_box(&packed);
                })
            });
            for per_channel in [false, true] {
                let codec = QuantCodec::new(bits, per_channel).expect("valid bits");
                group.bench_function(
                    BenchmarkId::new("encode_values", codec.id().to_string()),
                    |b| {
                        b.iter(|| {
                            codec
                                .encode_values(black_box(&values), shape)
                                .expect("encode")
                        })
                    },
                );
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_kernels, bench_codecs);
criterion_main!(benches);
