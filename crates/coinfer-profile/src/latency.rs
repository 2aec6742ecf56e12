//! The end-to-end latency model of the design (§1):
//! `T = T_dev(f_1..f_s; p) + T_enc + bits / R + RTT + T_dec + T_edge(f_{s+1}..f_L)`.
//!
//! The caller describes one plan with a [`PlanCost`]: the (possibly pruned) whole network, the
//! split point, the size of the encoded feature and the codec's times (codecs live in
//! `coinfer-codec`; [`LatencyModel::codec_times`] estimates them from FLOPs when they were not
//! measured). [`LatencyModel::predict`] returns every term in a [`Breakdown`].
//!
//! # The two ends
//! - **Edge only** (`split = 0`): nothing runs on the device (`device = 0`); the payload is the
//!   raw input, which the caller sizes (e.g. `8 · pixels` bits for an 8-bit image, or
//!   [`PlanCost::uncompressed`] for float32).
//! - **Device only** (`split = blocks`): the device computes the logits and keeps them; nothing
//!   is sent, so `encode = transmit = rtt = decode = edge = 0` whatever the plan says about the
//!   payload and the codec. (Reporting the class to a server, if wanted, is a few bytes outside
//!   the inference latency.)

use coinfer_split::NetSpec;
use serde::{Deserialize, Serialize};

use crate::cost::{FLOAT32_BYTES, NetCost};
use crate::error::{ProfileError, Result, check_non_negative};
use crate::measure::ProfileTable;
use crate::profile::{CodecCompute, ComputeProfile, LinkProfile};

/// One plan to cost: where the network is cut and what crosses the link.
#[derive(Debug, Clone, Copy)]
pub struct PlanCost<'a> {
    /// The whole network, with the device blocks pruned as the plan says.
    pub network: &'a NetSpec,
    /// Number of blocks run on the device (`0..=blocks`).
    pub split: usize,
    /// Size of the encoded feature on the wire, in bits (codec header included).
    pub payload_bits: u64,
    /// Seconds the device spends encoding the feature.
    pub encode_s: f64,
    /// Seconds the edge server spends decoding it.
    pub decode_s: f64,
}

impl<'a> PlanCost<'a> {
    /// A plan without a codec: the activation at `split` crosses the link as raw float32
    /// (`32 · elements` bits; for `split = 0`, the network input at float32).
    pub fn uncompressed(network: &'a NetSpec, split: usize) -> Result<PlanCost<'a>> {
        let cost = NetCost::of(network)?;
        let bits = cost.cut_elements(split)? * FLOAT32_BYTES * 8;
        Ok(PlanCost {
            network,
            split,
            payload_bits: bits,
            encode_s: 0.0,
            decode_s: 0.0,
        })
    }
}

/// Every term of the predicted latency of one inference, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Device blocks `[0, split)`.
    pub device: f64,
    /// Encoding the feature on the device.
    pub encode: f64,
    /// Pushing the payload (and the per-message overhead) through the link.
    pub transmit: f64,
    /// One round trip.
    pub rtt: f64,
    /// Decoding on the edge server.
    pub decode: f64,
    /// Edge blocks `[split, blocks)`.
    pub edge: f64,
    /// The sum of the above.
    pub total: f64,
}

/// Device, link and edge profiles together: predicts the latency of a plan.
///
/// ```
/// use coinfer_profile::{LatencyModel, PlanCost};
/// use coinfer_split::zoo;
///
/// let model = LatencyModel::from_presets("device-1gflops", "link-100mbps", "edge-gpu", None)?;
/// let net = zoo::resnet_mini(10);
/// let times: Vec<f64> = (0..=net.blocks.len())
///     .map(|s| Ok(model.predict(&PlanCost::uncompressed(&net, s)?)?.total))
///     .collect::<Result<_, coinfer_profile::ProfileError>>()?;
/// assert_eq!(times.len(), net.blocks.len() + 1);
/// // On a 100 Mbit/s link, sending the input to the edge GPU beats a 1 GFLOP/s phone.
/// assert!(times[0] < times[net.blocks.len()]);
/// # Ok::<(), coinfer_profile::ProfileError>(())
/// ```
///
/// A model is only made checked ([`new`](Self::new), or deserialised through it), so the
/// code that uses it trusts its profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "LatencyParts")]
pub struct LatencyModel {
    device: ComputeProfile,
    link: LinkProfile,
    edge: ComputeProfile,
}

/// A [`LatencyModel`] as written in JSON, before it is checked.
#[derive(Deserialize)]
struct LatencyParts {
    device: ComputeProfile,
    link: LinkProfile,
    edge: ComputeProfile,
}

impl TryFrom<LatencyParts> for LatencyModel {
    type Error = ProfileError;

    fn try_from(parts: LatencyParts) -> Result<LatencyModel> {
        LatencyModel::new(parts.device, parts.link, parts.edge)
    }
}

impl LatencyModel {
    /// A checked model; a bad field is reported as `device.…`, `link.…` or `edge.…`.
    pub fn new(device: ComputeProfile, link: LinkProfile, edge: ComputeProfile) -> Result<Self> {
        device.check().map_err(|e| e.within("device"))?;
        link.check().map_err(|e| e.within("link"))?;
        edge.check().map_err(|e| e.within("edge"))?;
        Ok(LatencyModel { device, link, edge })
    }

    /// The device's compute profile.
    pub fn device(&self) -> &ComputeProfile {
        &self.device
    }

    /// The link.
    pub fn link(&self) -> &LinkProfile {
        &self.link
    }

    /// The edge server's compute profile.
    pub fn edge(&self) -> &ComputeProfile {
        &self.edge
    }

    /// A model from shipped presets (see [`crate::preset`]); `table` is the one measured on the
    /// running backend, needed only by measured presets such as `this-machine`.
    pub fn from_presets(
        device: &str,
        link: &str,
        edge: &str,
        table: Option<&ProfileTable>,
    ) -> Result<Self> {
        LatencyModel::new(
            ComputeProfile::preset(device, table)?,
            LinkProfile::preset(link)?,
            ComputeProfile::preset(edge, table)?,
        )
    }

    /// Estimated encoder time on the device and decoder time on the edge, from their FLOPs
    /// (see [`ComputeProfile::codec_time_s`]); use measured times when you have them.
    pub fn codec_times(&self, encode: &CodecCompute, decode: &CodecCompute) -> (f64, f64) {
        (
            self.device.codec_time_s(encode),
            self.edge.codec_time_s(decode),
        )
    }

    /// The predicted latency of `plan`, term by term (see the [module docs](self) for the edge-
    /// and device-only ends).
    pub fn predict(&self, plan: &PlanCost) -> Result<Breakdown> {
        let blocks = plan.network.blocks.len();
        if plan.split > blocks {
            return Err(ProfileError::SplitOutOfRange {
                split: plan.split,
                blocks,
            });
        }
        check_non_negative("plan.encode_s", plan.encode_s)?;
        check_non_negative("plan.decode_s", plan.decode_s)?;

        let device_times = self.device.block_times(plan.network)?;
        let device = seconds_sum(&device_times[..plan.split]);
        if plan.split == blocks {
            return Ok(Breakdown {
                device,
                total: device,
                ..Breakdown::default()
            });
        }
        let edge_times = self.edge.block_times(plan.network)?;
        let edge = seconds_sum(&edge_times[plan.split..]);
        let transmit = self.link.transmit_s(plan.payload_bits);
        let rtt = self.link.rtt_s;
        Ok(Breakdown {
            device,
            encode: plan.encode_s,
            transmit,
            rtt,
            decode: plan.decode_s,
            edge,
            total: device + plan.encode_s + transmit + rtt + plan.decode_s + edge,
        })
    }
}

/// Sum of times; `+0.0` for none (std's float `sum` starts at `-0.0`, which prints as "-0").
pub(crate) fn seconds_sum(times: &[f64]) -> f64 {
    times.iter().fold(0.0, |acc, t| acc + t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::tests::synthetic_table;
    use coinfer_split::{BlockSpec, FeatureShape, zoo};

    /// 1×4×4 input → conv 3×3 (2 filters, pad 1) → flatten → linear 32 → 3.
    /// Conv: 288 MACs → 576 + BN 64 + ReLU 32 = 672 FLOPs. Flatten: 0. Linear: 96 MACs → 195.
    fn tiny() -> NetSpec {
        NetSpec {
            name: "tiny".into(),
            input: FeatureShape::image(1, 4, 4),
            blocks: vec![
                BlockSpec::ConvBnRelu {
                    out_channels: 2,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                BlockSpec::Flatten,
                BlockSpec::Linear {
                    out_features: 3,
                    relu: false,
                },
            ],
        }
    }

    /// Device 1000 FLOP/s + 10 ms per block; link 1000 bit/s, 50 ms RTT, 10 bytes overhead;
    /// edge 10 000 FLOP/s + 1 ms per block.
    fn model() -> LatencyModel {
        LatencyModel::new(
            ComputeProfile::analytic(1e3, 0.01).unwrap(),
            LinkProfile::new(1e3, 0.05, 10).unwrap(),
            ComputeProfile::analytic(1e4, 0.001).unwrap(),
        )
        .unwrap()
    }

    fn assert_close(got: f64, want: f64, what: &str) {
        assert!((got - want).abs() < 1e-12, "{what}: got {got}, want {want}");
    }

    #[test]
    fn tiny_network_flops_are_as_hand_counted() {
        let cost = NetCost::of(&tiny()).unwrap();
        let flops: Vec<u64> = cost.blocks.iter().map(|b| b.flops).collect();
        assert_eq!(flops, [672, 0, 195]);
    }

    #[test]
    fn mid_split_breakdown_by_hand() {
        let net = tiny();
        let plan = PlanCost {
            network: &net,
            split: 1,
            payload_bits: 256, // 32 elements at 8 bits
            encode_s: 0.002,
            decode_s: 0.003,
        };
        let t = model().predict(&plan).unwrap();
        assert_close(t.device, 0.672 + 0.01, "device");
        assert_close(t.encode, 0.002, "encode");
        assert_close(t.transmit, (256.0 + 80.0) / 1e3, "transmit");
        assert_close(t.rtt, 0.05, "rtt");
        assert_close(t.decode, 0.003, "decode");
        // Flatten is free; linear 195 / 1e4 + 1 ms.
        assert_close(t.edge, 0.0195 + 0.001, "edge");
        assert_close(
            t.total,
            0.682 + 0.002 + 0.336 + 0.05 + 0.003 + 0.0205,
            "total",
        );
    }

    #[test]
    fn edge_only_sends_the_raw_input() {
        let net = tiny();
        let plan = PlanCost::uncompressed(&net, 0).unwrap();
        assert_eq!(plan.payload_bits, 16 * 32);
        let t = model().predict(&plan).unwrap();
        assert_eq!(t.device, 0.0);
        assert!(t.device.is_sign_positive(), "device time is +0, not -0");
        assert_close(t.transmit, (512.0 + 80.0) / 1e3, "transmit");
        assert_close(t.edge, (0.0672 + 0.001) + (0.0195 + 0.001), "edge");
        assert_close(t.total, 0.592 + 0.05 + 0.0887, "total");
    }

    #[test]
    fn device_only_sends_nothing() {
        let net = tiny();
        let plan = PlanCost {
            network: &net,
            split: 3,
            payload_bits: 1_000,
            encode_s: 1.0,
            decode_s: 1.0,
        };
        let t = model().predict(&plan).unwrap();
        assert_close(t.device, 0.682 + 0.0 + 0.205, "device");
        assert_eq!(
            (t.encode, t.transmit, t.rtt, t.decode, t.edge),
            (0.0, 0.0, 0.0, 0.0, 0.0)
        );
        assert_close(t.total, 0.887, "total");
    }

    #[test]
    fn split_past_the_end_is_rejected() {
        let net = tiny();
        let plan = PlanCost {
            network: &net,
            split: 4,
            payload_bits: 0,
            encode_s: 0.0,
            decode_s: 0.0,
        };
        assert!(matches!(
            model().predict(&plan),
            Err(ProfileError::SplitOutOfRange {
                split: 4,
                blocks: 3
            })
        ));
        assert!(matches!(
            PlanCost::uncompressed(&net, 4),
            Err(ProfileError::SplitOutOfRange { .. })
        ));
    }

    #[test]
    fn negative_or_nan_codec_times_are_rejected() {
        let net = tiny();
        for (encode_s, decode_s, field) in [
            (-1e-3, 0.0, "plan.encode_s"),
            (0.0, f64::NAN, "plan.decode_s"),
        ] {
            let plan = PlanCost {
                network: &net,
                split: 1,
                payload_bits: 8,
                encode_s,
                decode_s,
            };
            match model().predict(&plan) {
                Err(ProfileError::InvalidValue { field: f, .. }) => assert_eq!(f, field),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn bad_profile_fields_are_named_with_their_owner() {
        let good = model();
        let mut bad_link = good.link().clone();
        bad_link.rate_bps = 0.0;
        let (device, link, edge) = (
            good.device().clone(),
            good.link().clone(),
            good.edge().clone(),
        );
        let cases = [
            (
                LatencyModel::new(device.clone(), bad_link, edge.clone()),
                "link.rate_bps",
            ),
            (
                LatencyModel::new(
                    ComputeProfile::Analytic {
                        flops_per_s: -1.0,
                        per_layer_overhead_s: 0.0,
                    },
                    link.clone(),
                    edge,
                ),
                "device.flops_per_s",
            ),
            (
                LatencyModel::new(
                    device,
                    link,
                    ComputeProfile::ScaledMeasured {
                        table: synthetic_table(&zoo::resnet_mini(10)),
                        slowdown: 0.0,
                    },
                ),
                "edge.slowdown",
            ),
        ];
        for (model, field) in cases {
            match model {
                Err(ProfileError::InvalidValue { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: unexpected {other:?}"),
            }
        }
        // Nor can JSON make an unchecked model.
        let mut json = serde_json::to_value(&good).unwrap();
        json["link"]["rate_bps"] = serde_json::json!(0.0);
        let err = serde_json::from_value::<LatencyModel>(json).unwrap_err();
        assert!(err.to_string().contains("link.rate_bps"), "{err}");
    }

    #[test]
    fn measured_profile_for_another_network_is_rejected_at_predict() {
        let model = LatencyModel::new(
            ComputeProfile::measured(synthetic_table(&zoo::resnet_mini(10))).unwrap(),
            LinkProfile::new(1e6, 0.0, 0).unwrap(),
            ComputeProfile::analytic(1e12, 0.0).unwrap(),
        )
        .unwrap();
        let net = tiny();
        let plan = PlanCost::uncompressed(&net, 1).unwrap();
        assert!(matches!(
            model.predict(&plan),
            Err(ProfileError::TableMismatch { .. })
        ));
    }

    #[test]
    fn pruning_the_device_part_shortens_its_time() {
        let dense = zoo::resnet_mini(10);
        let mut pruned = dense.clone();
        for block in &mut pruned.blocks[..4] {
            if let BlockSpec::BasicBlock { mid_channels, .. } = block {
                *mid_channels /= 2;
            }
        }
        for model in [
            LatencyModel::from_presets("device-1gflops", "link-10mbps", "edge-gpu", None).unwrap(),
            LatencyModel::from_presets(
                "this-machine",
                "link-10mbps",
                "this-machine",
                Some(&synthetic_table(&dense)),
            )
            .unwrap(),
        ] {
            let a = model
                .predict(&PlanCost::uncompressed(&dense, 4).unwrap())
                .unwrap();
            let b = model
                .predict(&PlanCost::uncompressed(&pruned, 4).unwrap())
                .unwrap();
            assert!(b.device < a.device, "{a:?} vs {b:?}");
            assert_eq!((a.transmit, a.edge), (b.transmit, b.edge));
        }
    }

    #[test]
    fn codec_times_come_from_the_device_and_the_edge() {
        let (enc, dec) =
            model().codec_times(&CodecCompute { flops: 1000 }, &CodecCompute { flops: 1000 });
        assert_close(enc, 1.0 + 0.01, "encode");
        assert_close(dec, 0.1 + 0.001, "decode");
    }

    #[test]
    fn breakdown_round_trips_through_json() {
        let net = tiny();
        let t = model()
            .predict(&PlanCost::uncompressed(&net, 1).unwrap())
            .unwrap();
        let back: Breakdown = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
