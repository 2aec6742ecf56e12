//! How fast the device and the edge server compute ([`ComputeProfile`]) and how fast the link
//! between them carries bits ([`LinkProfile`]).
//!
//! Profiles are plain serde data, checked once by `check` (or by the checked constructors)
//! with a [`ProfileError::InvalidValue`](crate::ProfileError::InvalidValue) naming the bad field; the latency model then trusts
//! them.

use coinfer_split::NetSpec;
use serde::{Deserialize, Serialize};

use crate::cost::NetCost;
use crate::error::{ProfileError, Result, check_non_negative, check_positive};
use crate::measure::ProfileTable;
use crate::preset;

/// How fast a machine runs the blocks of a network.
///
/// - [`Measured`](Self::Measured): the medians of a [`ProfileTable`] measured on that machine.
/// - [`Analytic`](Self::Analytic): `flops / flops_per_s + per_layer_overhead_s` per block, for a
///   machine one cannot run on (a phone, an edge GPU) described by its effective throughput.
/// - [`ScaledMeasured`](Self::ScaledMeasured): a table measured here, every time multiplied by
///   `slowdown` (a phone 10–50× slower than this machine: `slowdown = 20`; an edge GPU faster
///   than it: `slowdown < 1`).
///
/// A measured table also costs pruned variants of its network: a block whose FLOPs differ from
/// the measured one is scaled by the FLOP ratio (see [`ProfileTable::block_times_for`]).
/// Measured times are those of one pass of the table's batch size; measure with batch size 1
/// (the default) for the latency of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ComputeProfile {
    /// Times measured on this very machine.
    Measured {
        /// The measured table.
        table: ProfileTable,
    },
    /// An analytic machine: effective throughput plus a fixed cost per block.
    Analytic {
        /// Effective (achieved, not peak) floating-point throughput, FLOP/s.
        flops_per_s: f64,
        /// Fixed cost of every block that computes (kernel launch, dispatch), seconds.
        /// Blocks without FLOPs (flatten, a reshape) are free.
        per_layer_overhead_s: f64,
    },
    /// A measured table scaled to another machine.
    ScaledMeasured {
        /// The measured table.
        table: ProfileTable,
        /// Time on the target machine / time on the measuring machine (> 0).
        slowdown: f64,
    },
    /// Tables measured on another machine, one per network (e.g. the shipped H200 edge
    /// presets): a network is costed with the first table that
    /// [matches](ProfileTable::check_matches) it.
    MeasuredSet {
        /// The tables, at least one.
        tables: Vec<ProfileTable>,
    },
}

/// The arithmetic of a codec's encoder or decoder, for estimating its time on a profile when it
/// was not measured (see [`ComputeProfile::codec_time_s`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecCompute {
    /// Floating-point operations per sample (a conv encoder's `2 · MACs`, a quantizer's few
    /// operations per element).
    pub flops: u64,
}

impl ComputeProfile {
    /// A checked [`Analytic`](Self::Analytic) profile.
    pub fn analytic(flops_per_s: f64, per_layer_overhead_s: f64) -> Result<ComputeProfile> {
        let profile = ComputeProfile::Analytic {
            flops_per_s,
            per_layer_overhead_s,
        };
        profile.check()?;
        Ok(profile)
    }

    /// A checked [`Measured`](Self::Measured) profile.
    pub fn measured(table: ProfileTable) -> Result<ComputeProfile> {
        let profile = ComputeProfile::Measured { table };
        profile.check()?;
        Ok(profile)
    }

    /// A checked [`ScaledMeasured`](Self::ScaledMeasured) profile.
    pub fn scaled(table: ProfileTable, slowdown: f64) -> Result<ComputeProfile> {
        let profile = ComputeProfile::ScaledMeasured { table, slowdown };
        profile.check()?;
        Ok(profile)
    }

    /// A shipped preset by name (see [`crate::preset`]); measured presets such as
    /// `this-machine` need the table measured on the current backend.
    pub fn preset(name: &str, table: Option<&ProfileTable>) -> Result<ComputeProfile> {
        preset::compute_preset(name)?.resolve(table)
    }

    /// Checks every field: positive finite throughput and slowdown, non-negative finite
    /// overhead, a self-consistent table.
    pub fn check(&self) -> Result<()> {
        match self {
            ComputeProfile::Measured { table } => table.check().map_err(|e| e.within("table")),
            ComputeProfile::Analytic {
                flops_per_s,
                per_layer_overhead_s,
            } => {
                check_positive("flops_per_s", *flops_per_s)?;
                check_non_negative("per_layer_overhead_s", *per_layer_overhead_s)
            }
            ComputeProfile::ScaledMeasured { table, slowdown } => {
                check_positive("slowdown", *slowdown)?;
                table.check().map_err(|e| e.within("table"))
            }
            ComputeProfile::MeasuredSet { tables } => {
                if tables.is_empty() {
                    return Err(ProfileError::InvalidOption {
                        field: "tables",
                        reason: "a measured set needs at least one table".into(),
                    });
                }
                tables.iter().enumerate().try_for_each(|(i, table)| {
                    table.check().map_err(|e| e.within(&format!("tables[{i}]")))
                })
            }
        }
    }

    /// The predicted time, in seconds, of every block of `spec` on this machine.
    pub fn block_times(&self, spec: &NetSpec) -> Result<Vec<f64>> {
        match self {
            ComputeProfile::Measured { table } => table.block_times_for(spec),
            ComputeProfile::ScaledMeasured { table, slowdown } => Ok(table
                .block_times_for(spec)?
                .into_iter()
                .map(|t| t * slowdown)
                .collect()),
            ComputeProfile::MeasuredSet { tables } => {
                matching_table(tables, spec)?.block_times_for(spec)
            }
            ComputeProfile::Analytic {
                flops_per_s,
                per_layer_overhead_s,
            } => Ok(NetCost::of(spec)?
                .blocks
                .iter()
                .map(|b| analytic_time(b.flops, *flops_per_s, *per_layer_overhead_s))
                .collect()),
        }
    }

    /// The effective throughput in FLOP/s: `flops_per_s` for an analytic profile; for a measured
    /// one, the table's FLOPs (times its batch size) over the sum of its medians, divided by the
    /// slowdown. Infinite for a table whose times are all zero.
    pub fn effective_flops_per_s(&self) -> f64 {
        let measured = |table: &ProfileTable| {
            let flops: u64 = table.blocks.iter().map(|b| b.flops).sum();
            let work = flops as f64 * table.batch_size as f64;
            let time = table.total_median_s();
            if time > 0.0 {
                work / time
            } else {
                f64::INFINITY
            }
        };
        match self {
            ComputeProfile::Analytic { flops_per_s, .. } => *flops_per_s,
            ComputeProfile::Measured { table } => measured(table),
            ComputeProfile::ScaledMeasured { table, slowdown } => measured(table) / slowdown,
            // Codec stages have no network to match: the first table's throughput stands in.
            ComputeProfile::MeasuredSet { tables } => tables.first().map_or(0.0, measured),
        }
    }

    /// Estimated time of a codec stage on this machine: its FLOPs at the
    /// [effective throughput](Self::effective_flops_per_s), plus one per-layer overhead for an
    /// analytic profile (a measured table's overheads are already inside its throughput).
    /// Zero FLOPs cost nothing.
    pub fn codec_time_s(&self, codec: &CodecCompute) -> f64 {
        match self {
            ComputeProfile::Analytic {
                flops_per_s,
                per_layer_overhead_s,
            } => analytic_time(codec.flops, *flops_per_s, *per_layer_overhead_s),
            _ if codec.flops == 0 => 0.0,
            _ => codec.flops as f64 / self.effective_flops_per_s(),
        }
    }
}

/// The first of `tables` that can cost `spec`, or why none can.
fn matching_table<'a>(tables: &'a [ProfileTable], spec: &NetSpec) -> Result<&'a ProfileTable> {
    let mut reasons = Vec::new();
    for table in tables {
        match table.check_matches(spec) {
            Ok(()) => return Ok(table),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    Err(ProfileError::TableMismatch {
        table: tables
            .iter()
            .map(|t| t.network.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        network: spec.name.clone(),
        reason: format!("no table of the set matches: {}", reasons.join("; ")),
    })
}

fn analytic_time(flops: u64, flops_per_s: f64, overhead_s: f64) -> f64 {
    if flops == 0 {
        0.0
    } else {
        flops as f64 / flops_per_s + overhead_s
    }
}

/// The link between device and edge server.
///
/// Sending `b` payload bits takes `(b + 8 · per_message_overhead_bytes) / rate_bps` seconds, plus
/// one round-trip time `rtt_s` for the request and its (tiny) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkProfile {
    /// Short name (`link-10mbps`); empty for a hand-made link.
    #[serde(default)]
    pub name: String,
    /// What the figures model and where they come from.
    #[serde(default)]
    pub description: String,
    /// Uplink rate (goodput) in bit/s; must be positive.
    pub rate_bps: f64,
    /// Round-trip time in seconds; must be non-negative.
    pub rtt_s: f64,
    /// Bytes added to every message (TCP/IP headers, the coinfer frame header).
    pub per_message_overhead_bytes: u64,
}

impl LinkProfile {
    /// A checked link with no name.
    pub fn new(rate_bps: f64, rtt_s: f64, per_message_overhead_bytes: u64) -> Result<LinkProfile> {
        let link = LinkProfile {
            name: String::new(),
            description: String::new(),
            rate_bps,
            rtt_s,
            per_message_overhead_bytes,
        };
        link.check()?;
        Ok(link)
    }

    /// A shipped link preset by name (see [`crate::preset`]).
    pub fn preset(name: &str) -> Result<LinkProfile> {
        preset::link_preset(name)
    }

    /// Checks the fields: a positive finite rate, a non-negative finite RTT.
    pub fn check(&self) -> Result<()> {
        check_positive("rate_bps", self.rate_bps)?;
        check_non_negative("rtt_s", self.rtt_s)
    }

    /// Seconds to push one message of `payload_bits` through the link (without the RTT).
    pub fn transmit_s(&self, payload_bits: u64) -> f64 {
        (payload_bits as f64 + 8.0 * self.per_message_overhead_bytes as f64) / self.rate_bps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProfileError;
    use crate::measure::tests::synthetic_table;
    use coinfer_split::{BlockSpec, zoo};

    fn field_of(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(ProfileError::InvalidValue { field, .. }) => field,
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    #[test]
    fn zero_or_negative_or_nan_rate_is_rejected() {
        for rate in [0.0, -1e6, f64::NAN, f64::INFINITY] {
            assert_eq!(
                field_of(LinkProfile::new(rate, 0.01, 0)),
                "rate_bps",
                "{rate}"
            );
        }
    }

    #[test]
    fn negative_or_nan_rtt_is_rejected() {
        for rtt in [-0.001, f64::NAN] {
            assert_eq!(field_of(LinkProfile::new(1e6, rtt, 0)), "rtt_s", "{rtt}");
        }
        assert!(LinkProfile::new(1e6, 0.0, 0).is_ok());
    }

    #[test]
    fn non_positive_flops_per_s_is_rejected() {
        for rate in [0.0, -1.0, f64::NAN] {
            assert_eq!(field_of(ComputeProfile::analytic(rate, 0.0)), "flops_per_s");
        }
    }

    #[test]
    fn negative_overhead_is_rejected() {
        assert_eq!(
            field_of(ComputeProfile::analytic(1e9, -1e-6)),
            "per_layer_overhead_s"
        );
    }

    #[test]
    fn non_positive_slowdown_is_rejected() {
        let table = synthetic_table(&zoo::resnet_mini(10));
        for slowdown in [0.0, -2.0, f64::NAN] {
            assert_eq!(
                field_of(ComputeProfile::scaled(table.clone(), slowdown)),
                "slowdown"
            );
        }
    }

    #[test]
    fn bad_table_inside_a_profile_is_named() {
        let mut table = synthetic_table(&zoo::resnet_mini(10));
        table.blocks[1].time.p90_s = f64::NAN;
        assert_eq!(
            field_of(ComputeProfile::measured(table)),
            "table.blocks[1].p90_s"
        );
    }

    #[test]
    fn analytic_block_times_are_flops_over_rate_plus_overhead() {
        let spec = zoo::resnet_mini(10);
        let cost = NetCost::of(&spec).unwrap();
        let profile = ComputeProfile::analytic(1e9, 1e-4).unwrap();
        let times = profile.block_times(&spec).unwrap();
        assert!((times[0] - (cost.blocks[0].flops as f64 / 1e9 + 1e-4)).abs() < 1e-15);
        assert_eq!(spec.blocks[5], BlockSpec::Flatten);
        assert_eq!(times[5], 0.0, "flatten is free");
    }

    #[test]
    fn scaled_measured_multiplies_by_the_slowdown() {
        let spec = zoo::resnet_mini(10);
        let table = synthetic_table(&spec);
        let here = ComputeProfile::measured(table.clone()).unwrap();
        let phone = ComputeProfile::scaled(table, 20.0).unwrap();
        let (a, b) = (
            here.block_times(&spec).unwrap(),
            phone.block_times(&spec).unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!((y - 20.0 * x).abs() < 1e-15);
        }
        assert!((here.effective_flops_per_s() / phone.effective_flops_per_s() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn measured_profile_rejects_a_foreign_network() {
        let profile = ComputeProfile::measured(synthetic_table(&zoo::resnet_mini(10))).unwrap();
        let mut spec = zoo::resnet_mini(10);
        spec.blocks.insert(
            2,
            BlockSpec::MaxPool {
                kernel: 1,
                stride: 1,
                padding: 0,
            },
        );
        assert!(matches!(
            profile.block_times(&spec),
            Err(ProfileError::TableMismatch { .. })
        ));
    }

    #[test]
    fn codec_time_uses_the_effective_rate() {
        let analytic = ComputeProfile::analytic(1e9, 1e-4).unwrap();
        let t = analytic.codec_time_s(&CodecCompute { flops: 2_000_000 });
        assert!((t - (2e-3 + 1e-4)).abs() < 1e-15);
        assert_eq!(analytic.codec_time_s(&CodecCompute { flops: 0 }), 0.0);

        let spec = zoo::resnet_mini(10);
        let table = synthetic_table(&spec);
        let total_flops: u64 = table.blocks.iter().map(|b| b.flops).sum();
        let total_time = 1e-3 * table.blocks.len() as f64;
        let measured = ComputeProfile::measured(table).unwrap();
        // Every block takes 1 ms: the whole network's FLOPs take blocks × 1 ms.
        let t = measured.codec_time_s(&CodecCompute { flops: total_flops });
        assert!((t - total_time).abs() < 1e-12, "{t}");
        let t = measured.codec_time_s(&CodecCompute {
            flops: total_flops / 2,
        });
        assert!((t - total_time / 2.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn transmit_counts_payload_and_overhead_bits() {
        let link = LinkProfile::new(1e6, 0.02, 100).unwrap();
        assert!((link.transmit_s(1_000_000) - (1e6 + 800.0) / 1e6).abs() < 1e-15);
        assert!((link.transmit_s(0) - 8e-4).abs() < 1e-15);
    }

    #[test]
    fn profiles_round_trip_through_json() {
        let profiles = [
            ComputeProfile::analytic(1e9, 5e-5).unwrap(),
            ComputeProfile::scaled(synthetic_table(&zoo::resnet_mini(10)), 12.5).unwrap(),
        ];
        for profile in profiles {
            let json = serde_json::to_string(&profile).unwrap();
            let back: ComputeProfile = serde_json::from_str(&json).unwrap();
            assert_eq!(back, profile);
        }
        let link = LinkProfile::new(1e7, 0.01, 80).unwrap();
        let back: LinkProfile =
            serde_json::from_str(&serde_json::to_string(&link).unwrap()).unwrap();
        assert_eq!(back, link);
    }
}
