//! The device ↔ edge runtime: a split network run as two processes over TCP.
//!
//! The edge process holds the edge half and serves many devices at once ([`EdgeServer`]); each
//! device process runs the device half, encodes the split feature with a
//! [`FeatureCodec`] and sends it ([`DeviceClient`]). They speak a
//! small binary protocol ([`frame`]: magic, version, request id, plan tag, codec, shape,
//! payload, CRC32); a handshake refuses clients built for another plan (digest), codec or split
//! point. An uplink of a given rate and delay can be emulated on loopback ([`LinkShaping`]) so
//! measured latency can be compared with the latency model. The protocol, the threading model
//! and measurements are in `docs/runtime.md`; [`EdgeServer`] and [`DeviceClient`] have
//! runnable examples.

pub mod client;
pub mod error;
pub mod frame;
pub mod server;
pub mod shaping;
mod worker;

use std::sync::Arc;

use coinfer_codec::{CodecId, FeatureCodec, Float32Codec, QuantCodec};

pub use client::{ClientConfig, DeviceClient, InferResult, Timing};
pub use error::{ErrorCode, RuntimeError};
pub use frame::{
    DEFAULT_MAX_FRAME, EdgeTiming, Frame, FrameBody, FrameKind, PlanTag, decode_frame,
    encode_frame, read_frame, write_frame,
};
pub use server::{EdgeServer, ServerConfig, ServerHandle, ServerStats};
pub use shaping::{LinkShaping, ShapedWriter, TokenBucket};

/// A codec shared by the server's threads (the edge worker decodes, connection threads only
/// read its id).
pub type SharedCodec = Arc<dyn FeatureCodec + Send + Sync>;

/// A weight-free codec (float32 or uniform quantization) from its id, ready to share.
///
/// Learned autoencoders need their weights: load them with
/// `coinfer_codec::AutoencoderCodec::load` and wrap them in an [`Arc`].
///
/// # Errors
/// [`RuntimeError::Codec`] for invalid parameters or an autoencoder id.
pub fn shared_fixed_codec(id: CodecId) -> Result<SharedCodec, RuntimeError> {
    id.check()?;
    match id {
        CodecId::Float32 => Ok(Arc::new(Float32Codec)),
        CodecId::Quant {
            bits,
            per_channel,
            entropy,
        } => Ok(Arc::new(
            QuantCodec::new(bits, per_channel)?.with_entropy(entropy),
        )),
        CodecId::Autoencoder { .. } => Err(coinfer_codec::fixed_codec(id)
            .err()
            .map(RuntimeError::from)
            .unwrap_or_else(|| RuntimeError::InvalidConfig {
                field: "codec",
                reason: format!("{id} needs trained weights"),
            })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_shareable<T: Send + Sync>() {}

    #[test]
    fn every_codec_can_be_shared_with_the_server() {
        is_shareable::<Float32Codec>();
        is_shareable::<QuantCodec>();
        is_shareable::<coinfer_codec::AutoencoderCodec>();
        is_shareable::<crate::Network>();
    }

    #[test]
    fn shared_fixed_codecs_keep_their_id_and_refuse_autoencoders() {
        for id in [
            CodecId::Float32,
            CodecId::quant(8, false),
            CodecId::quant(2, true),
        ] {
            assert_eq!(shared_fixed_codec(id).unwrap().id(), id);
        }
        assert!(shared_fixed_codec(CodecId::autoencoder(4, 4)).is_err());
        assert!(shared_fixed_codec(CodecId::quant(9, false)).is_err());
    }
}
