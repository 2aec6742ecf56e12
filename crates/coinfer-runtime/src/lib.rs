//! The device ↔ edge runtime: a split network run as two processes over TCP.
//!
//! The edge process holds the edge half and serves many devices at once ([`EdgeServer`]); each
//! device process runs the device half, encodes the split feature with a
//! [`FeatureCodec`](coinfer_codec::FeatureCodec) and sends it ([`DeviceClient`]). They speak a
//! small binary protocol ([`Frame`]: magic, version, request id, plan tag, codec, shape,
//! payload, CRC32); a handshake refuses clients built for another plan (digest), codec or split
//! point. An uplink of a given rate and delay can be emulated on loopback ([`LinkShaping`]) so
//! measured latency can be compared with the latency model. Connections may run over TLS, with
//! client certificates for mutual TLS ([`ServerTlsConfig`], [`ClientTlsConfig`]), and a
//! deployment [`Token`] in the Hello. One server can serve every plan of a plan set on one port
//! ([`EdgeServer::bind_set`], [`DeviceClient::connect_set`]), and an [`AdaptiveClient`] picks
//! the plan of each request from the link it measures ([`LinkEstimator`], [`PlanChooser`]),
//! on a link that may follow a [`LinkTrace`]. The protocol, the threading model
//! and measurements are in `docs/runtime.md`; [`EdgeServer`] and [`DeviceClient`] have
//! runnable examples.
//!
//! The network halves come from `coinfer-split`, the codecs (and [`SharedCodec`],
//! [`fixed_codec`]) from `coinfer-codec`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod adaptive;
mod client;
mod error;
mod frame;
mod server;
mod shaping;
mod tls;
mod transport;
mod worker;

pub use adaptive::{
    AdaptiveAnswer, AdaptiveClient, EstimatorConfig, LinkEstimate, LinkEstimator, PlanChooser,
    PlanCosts, Policy, Switch,
};
pub use client::{ClientConfig, ClientPlan, DeviceClient, InferResult, MAX_BACKOFF, Timing};
pub use error::{ErrorCode, RuntimeError};
pub use frame::{
    DEFAULT_MAX_FRAME, EdgeTiming, Frame, FrameBody, FrameKind, PlanTag, TOKEN_SEPARATOR,
    decode_frame, encode_frame, read_frame, split_hello, write_frame,
};
pub use server::{
    EdgePlan, EdgeServer, MAX_TOKEN_LEN, ServerConfig, ServerHandle, ServerStats, Token,
};
pub use shaping::{
    LinkShaping, LinkTrace, ShapedWriter, TokenBucket, TraceClock, TracePlayer, TraceStep,
};
pub use tls::{ClientTls, ClientTlsConfig, ServerTls, ServerTlsConfig, TlsConfigError, TlsFailure};

#[cfg(test)]
mod tests {
    use coinfer_codec::{Float32Codec, QuantCodec};

    fn is_shareable<T: Send + Sync>() {}

    #[test]
    fn every_codec_and_network_can_be_shared_with_the_server() {
        is_shareable::<Float32Codec>();
        is_shareable::<QuantCodec>();
        is_shareable::<coinfer_codec::AutoencoderCodec>();
        is_shareable::<coinfer_split::Network>();
    }
}
