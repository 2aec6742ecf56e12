//! The lossless passthrough codec: raw little-endian `f32` values behind the common header.

use burn::prelude::*;

use crate::codec::{CodecId, FeatureCodec, expect_codec, feature_tensor, feature_values};
use crate::error::CodecError;
use crate::payload::{Payload, PayloadHeader, PayloadWriter, check_feature_shape, read_header};

/// Sends the feature uncompressed (32 bits per element); the baseline of every codec family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Float32Codec;

impl Float32Codec {
    /// Encodes NCHW values of `shape`.
    ///
    /// # Errors
    /// [`CodecError::InvalidShape`] or [`CodecError::ShapeMismatch`] when `values.len()` is
    /// not the shape's product.
    pub fn encode_values(&self, values: &[f32], shape: [usize; 4]) -> Result<Payload, CodecError> {
        let elements = check_feature_shape(shape)?;
        if values.len() != elements {
            return Err(CodecError::ShapeMismatch {
                what: "feature values",
                expected: format!("{shape:?} = {elements} elements"),
                found: format!("{} elements", values.len()),
            });
        }
        let header = PayloadHeader {
            codec: CodecId::Float32,
            shape,
            entropy_coded_body: false,
        };
        let mut writer = PayloadWriter::new(&header, elements * 4);
        let bytes = writer.bytes_mut();
        let start = bytes.len();
        bytes.resize(start + elements * 4, 0);
        for (dst, v) in bytes[start..].chunks_exact_mut(4).zip(values) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        Ok(writer.finish())
    }

    /// Decodes a payload into NCHW values and their shape.
    ///
    /// # Errors
    /// Any header error, [`CodecError::CodecMismatch`], [`CodecError::LengthMismatch`].
    pub fn decode_values(&self, payload: &[u8]) -> Result<(Vec<f32>, [usize; 4]), CodecError> {
        let (header, body) = read_header(payload)?;
        expect_codec(CodecId::Float32, header.codec)?;
        let expected = header.elements() * 4;
        if body.len() != expected {
            return Err(CodecError::LengthMismatch {
                field: "float32 body",
                expected,
                found: body.len(),
            });
        }
        let values = body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok((values, header.shape))
    }
}

impl FeatureCodec for Float32Codec {
    fn id(&self) -> CodecId {
        CodecId::Float32
    }

    fn encode(&self, feature: Tensor<4>) -> Result<Payload, CodecError> {
        let (values, shape) = feature_values(feature)?;
        self.encode_values(&values, shape)
    }

    fn decode(&self, payload: &[u8], device: &Device) -> Result<Tensor<4>, CodecError> {
        let (values, shape) = self.decode_values(payload)?;
        Ok(feature_tensor(values, shape, device))
    }
}
