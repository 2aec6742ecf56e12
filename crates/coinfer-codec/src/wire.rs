//! [`CodecWire`]: how a codec id travels in payload headers and runtime frames.

use crate::codec::{CodecId, MAX_AE_KERNEL, MAX_AE_STRIDE};
use crate::error::CodecError;
use crate::image_codec::{ImageFormat, check_quality};
use crate::quantize::check_bits;

const KIND_FLOAT32: u8 = 0;
const KIND_QUANT: u8 = 1;
pub(crate) const KIND_AUTOENCODER: u8 = 2;
const KIND_IMAGE: u8 = 3;

const WORD_BITS: u16 = 0x000f;
const WORD_PER_CHANNEL: u16 = 1 << 4;
const WORD_ENTROPY: u16 = 1 << 5;
const WORD_RESERVED: u16 = 0x00c0;
const WORD_KIND_SHIFT: u16 = 8;
const WORD_KIND: u16 = 0x0300;
const WORD_KERNEL_SHIFT: u16 = 10;
const WORD_STRIDE_SHIFT: u16 = 13;
const WORD_SHAPE_BITS: u16 = 0xfc00;

/// How a [`CodecId`] travels in payload headers and runtime frames — the one
/// definition of a codec's numeric code, its compact 16-bit word, and the checks a decoder
/// runs on them.
///
/// Fields: `kind` (0 float32, 1 quant, 2 autoencoder, 3 image), `bits` (0 for float32, the
/// format for an image codec — 1 PNG, 2 JPEG, 3 WebP, 4 lossless WebP — else 1..=8),
/// `per_channel` (quant only), `entropy` (quant and autoencoder), `ratio` (autoencoder only,
/// ≥ 1; an image codec's quality, 1..=100 for JPEG and WebP, 0 for the lossless formats),
/// `kernel` and `stride` (autoencoder only; 0 for the others). Payload headers write the
/// fields byte by byte (see the layout on [`crate::Payload`]); runtime frames write
/// the [`word`](CodecWire::word)
/// and the ratio:
///
/// ```text
/// word bit  0-3   bit width (image codecs: the format)
///           4     per-channel ranges
///           5     entropy coding
///           6-7   zero
///           8-9   kind
///           10-12 (kernel - 1) / 2   (autoencoders; zero otherwise)
///           13-15 stride - 1         (autoencoders; zero otherwise)
/// ```
///
/// A 1×1, stride-1 autoencoder has zero kernel and stride bits, so words written before kernel
/// and stride were recorded read back unchanged.
///
/// ```
/// use coinfer_codec::{CodecId, CodecWire};
///
/// let id = CodecId::Autoencoder { ratio: 8, bits: 4, entropy: false, kernel: 3, stride: 2 };
/// let wire = id.to_wire();
/// let (word, ratio) = (wire.word(), wire.ratio);
/// assert_eq!(CodecWire::from_word(word, ratio)?.codec()?, id);
/// # Ok::<(), coinfer_codec::CodecError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CodecWire {
    /// 0 float32, 1 quant, 2 autoencoder, 3 image.
    pub kind: u8,
    /// Bit width (0 for float32; the format code of an image codec).
    pub bits: u8,
    /// Per-channel ranges (quant only).
    pub per_channel: bool,
    /// Entropy coding.
    pub entropy: bool,
    /// Channel reduction ratio (autoencoder), quality (image codec), else 0.
    pub ratio: u16,
    /// Kernel size (autoencoder only, else 0).
    pub kernel: u8,
    /// Stride (autoencoder only, else 0).
    pub stride: u8,
}

impl CodecId {
    /// The codec's wire code. Check the id first ([`CodecId::check`]) when it comes from
    /// outside: [`CodecWire::word`] assumes valid kernel and stride.
    pub fn to_wire(&self) -> CodecWire {
        match *self {
            CodecId::Float32 => CodecWire {
                kind: KIND_FLOAT32,
                ..CodecWire::default()
            },
            CodecId::Quant {
                bits,
                per_channel,
                entropy,
            } => CodecWire {
                kind: KIND_QUANT,
                bits,
                per_channel,
                entropy,
                ..CodecWire::default()
            },
            CodecId::Image { format, quality } => CodecWire {
                kind: KIND_IMAGE,
                bits: format.code(),
                ratio: quality.into(),
                ..CodecWire::default()
            },
            CodecId::Autoencoder {
                ratio,
                bits,
                entropy,
                kernel,
                stride,
            } => CodecWire {
                kind: KIND_AUTOENCODER,
                bits,
                entropy,
                ratio,
                kernel,
                stride,
                ..CodecWire::default()
            },
        }
    }
}

impl CodecWire {
    /// The kernel and stride bits of the [`word`](Self::word) (zero in words written before
    /// kernel and stride were recorded).
    pub const WORD_SHAPE_BITS: u16 = WORD_SHAPE_BITS;

    /// The codec these numbers name, after checking every field.
    ///
    /// # Errors
    /// [`CodecError::UnknownCodecKind`], [`CodecError::BitsOutOfRange`], or
    /// [`CodecError::BadHeaderField`] naming the field a sender never writes.
    pub fn codec(&self) -> Result<CodecId, CodecError> {
        let bad = |field, value: u64, reason| CodecError::BadHeaderField {
            field,
            value,
            reason,
        };
        if self.kind != KIND_AUTOENCODER {
            if self.ratio != 0 && self.kind != KIND_IMAGE {
                return Err(bad(
                    "ratio",
                    self.ratio.into(),
                    "only autoencoder payloads carry a ratio",
                ));
            }
            if self.kernel != 0 {
                return Err(bad(
                    "kernel",
                    self.kernel.into(),
                    "only autoencoders carry a kernel",
                ));
            }
            if self.stride != 0 {
                return Err(bad(
                    "stride",
                    self.stride.into(),
                    "only autoencoders carry a stride",
                ));
            }
        }
        let codec = match self.kind {
            KIND_FLOAT32 => {
                if self.bits != 0 {
                    return Err(bad(
                        "bits",
                        self.bits.into(),
                        "float32 payloads have bits = 0",
                    ));
                }
                if self.per_channel || self.entropy {
                    return Err(bad(
                        "flags",
                        u64::from(self.per_channel) | (u64::from(self.entropy) << 1),
                        "float32 payloads have no flags",
                    ));
                }
                CodecId::Float32
            }
            KIND_QUANT => {
                check_bits(self.bits, "codec wire code")?;
                CodecId::Quant {
                    bits: self.bits,
                    per_channel: self.per_channel,
                    entropy: self.entropy,
                }
            }
            KIND_AUTOENCODER => {
                check_bits(self.bits, "codec wire code")?;
                if self.per_channel {
                    return Err(bad(
                        "flags",
                        1,
                        "autoencoder latents have a fixed range, not per-channel ranges",
                    ));
                }
                if self.ratio == 0 {
                    return Err(bad("ratio", 0, "the autoencoder ratio must be at least 1"));
                }
                if self.kernel == 0 || self.kernel.is_multiple_of(2) || self.kernel > MAX_AE_KERNEL
                {
                    return Err(bad(
                        "kernel",
                        self.kernel.into(),
                        "the autoencoder kernel must be odd and at most 15",
                    ));
                }
                if self.stride == 0 || self.stride > MAX_AE_STRIDE {
                    return Err(bad(
                        "stride",
                        self.stride.into(),
                        "the autoencoder stride must be in 1..=8",
                    ));
                }
                CodecId::Autoencoder {
                    ratio: self.ratio,
                    bits: self.bits,
                    entropy: self.entropy,
                    kernel: self.kernel,
                    stride: self.stride,
                }
            }
            KIND_IMAGE => {
                if self.per_channel || self.entropy {
                    return Err(bad(
                        "flags",
                        u64::from(self.per_channel) | (u64::from(self.entropy) << 1),
                        "image payloads have no flags",
                    ));
                }
                let format = ImageFormat::from_code(self.bits).ok_or_else(|| {
                    bad(
                        "bits",
                        self.bits.into(),
                        "an image codec's format is 1 (PNG), 2 (JPEG), 3 (WebP) or 4 (lossless WebP)",
                    )
                })?;
                let quality = u8::try_from(self.ratio)
                    .ok()
                    .filter(|&q| check_quality(format, q).is_ok())
                    .ok_or_else(|| {
                        bad(
                            "quality",
                            self.ratio.into(),
                            "an image quality is 1..=100 for JPEG and WebP, 0 for PNG and lossless WebP",
                        )
                    })?;
                CodecId::Image { format, quality }
            }
            kind => return Err(CodecError::UnknownCodecKind { kind }),
        };
        Ok(codec)
    }

    /// The compact 16-bit word (everything but the ratio).
    pub fn word(&self) -> u16 {
        let shape = if self.kind == KIND_AUTOENCODER {
            let kernel = u16::from(self.kernel.max(1) - 1) / 2;
            let stride = u16::from(self.stride.max(1) - 1);
            ((kernel & 0x7) << WORD_KERNEL_SHIFT) | ((stride & 0x7) << WORD_STRIDE_SHIFT)
        } else {
            0
        };
        u16::from(self.bits & 0x0f)
            | (u16::from(self.per_channel) * WORD_PER_CHANNEL)
            | (u16::from(self.entropy) * WORD_ENTROPY)
            | (u16::from(self.kind & 0x3) << WORD_KIND_SHIFT)
            | shape
    }

    /// The wire code of a `(word, ratio)` pair, not yet checked (call [`codec`](Self::codec)).
    ///
    /// # Errors
    /// [`CodecError::BadHeaderField`] when the word's reserved bits (6 and 7) are set, or a
    /// non-autoencoder word has kernel or stride bits.
    pub fn from_word(word: u16, ratio: u16) -> Result<CodecWire, CodecError> {
        if word & WORD_RESERVED != 0 {
            return Err(CodecError::BadHeaderField {
                field: "codec word",
                value: word.into(),
                reason: "reserved bits of the codec word are set",
            });
        }
        let kind = ((word & WORD_KIND) >> WORD_KIND_SHIFT) as u8;
        let (kernel, stride) = if kind == KIND_AUTOENCODER {
            (
                2 * ((word >> WORD_KERNEL_SHIFT) & 0x7) as u8 + 1,
                ((word >> WORD_STRIDE_SHIFT) & 0x7) as u8 + 1,
            )
        } else if word & WORD_SHAPE_BITS != 0 {
            return Err(CodecError::BadHeaderField {
                field: "codec word",
                value: word.into(),
                reason: "only autoencoders carry kernel and stride bits",
            });
        } else {
            (0, 0)
        };
        Ok(CodecWire {
            kind,
            bits: (word & WORD_BITS) as u8,
            per_channel: word & WORD_PER_CHANNEL != 0,
            entropy: word & WORD_ENTROPY != 0,
            ratio,
            kernel,
            stride,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ids() -> Vec<CodecId> {
        let mut ids = vec![CodecId::Float32];
        for format in ImageFormat::ALL {
            let qualities: Vec<u8> = if format.is_lossless() {
                vec![0]
            } else {
                vec![1, 50, 75, 100]
            };
            ids.extend(qualities.into_iter().map(|q| CodecId::image(format, q)));
        }
        for bits in 1..=8 {
            for per_channel in [false, true] {
                for entropy in [false, true] {
                    ids.push(CodecId::Quant {
                        bits,
                        per_channel,
                        entropy,
                    });
                }
            }
            for kernel in (1..=MAX_AE_KERNEL).step_by(2) {
                for stride in 1..=MAX_AE_STRIDE {
                    ids.push(CodecId::Autoencoder {
                        ratio: 7,
                        bits,
                        entropy: bits % 2 == 0,
                        kernel,
                        stride,
                    });
                }
            }
        }
        ids
    }

    #[test]
    fn every_valid_id_round_trips_through_fields_and_word() {
        for id in all_ids() {
            let wire = id.to_wire();
            assert_eq!(wire.codec().unwrap(), id);
            let back = CodecWire::from_word(wire.word(), wire.ratio).unwrap();
            assert_eq!(back, wire, "{id}");
        }
    }

    #[test]
    fn words_of_1x1_autoencoders_have_no_shape_bits() {
        let word = CodecId::autoencoder(4, 4).to_wire().word();
        assert_eq!(word & WORD_SHAPE_BITS, 0);
        assert_eq!(word, 0x0204);
    }

    #[test]
    fn invalid_codes_name_their_field() {
        let field = |wire: CodecWire| match wire.codec() {
            Err(CodecError::BadHeaderField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let ae = CodecId::autoencoder(4, 4).to_wire();
        assert_eq!(field(CodecWire { kernel: 2, ..ae }), "kernel");
        assert_eq!(field(CodecWire { kernel: 17, ..ae }), "kernel");
        assert_eq!(field(CodecWire { stride: 0, ..ae }), "stride");
        assert_eq!(field(CodecWire { stride: 9, ..ae }), "stride");
        assert_eq!(field(CodecWire { ratio: 0, ..ae }), "ratio");
        let quant = CodecId::quant(4, true).to_wire();
        assert_eq!(field(CodecWire { kernel: 1, ..quant }), "kernel");
        assert_eq!(field(CodecWire { stride: 1, ..quant }), "stride");
        assert_eq!(field(CodecWire { ratio: 1, ..quant }), "ratio");
        assert!(matches!(
            CodecWire { kind: 4, ..quant }.codec(),
            Err(CodecError::UnknownCodecKind { kind: 4 })
        ));
        assert!(CodecWire::from_word(0x0040, 0).is_err());
        let jpeg = CodecId::image(ImageFormat::Jpeg, 75).to_wire();
        assert_eq!(field(CodecWire { ratio: 0, ..jpeg }), "quality");
        assert_eq!(field(CodecWire { ratio: 101, ..jpeg }), "quality");
        assert_eq!(field(CodecWire { ratio: 300, ..jpeg }), "quality");
        let png = CodecId::image(ImageFormat::Png, 0).to_wire();
        assert_eq!(field(CodecWire { ratio: 50, ..png }), "quality");
        assert_eq!(field(CodecWire { bits: 0, ..png }), "bits");
        assert_eq!(field(CodecWire { bits: 5, ..png }), "bits");
        assert_eq!(
            field(CodecWire {
                entropy: true,
                ..png
            }),
            "flags"
        );
        assert_eq!(field(CodecWire { kernel: 1, ..png }), "kernel");
        assert!(
            CodecWire::from_word(0x0400, 0).is_err(),
            "float32 kernel bits"
        );
    }
}
