//! Image codecs of the raw input (split 0): the image sent as a user would send it — PNG,
//! JPEG or WebP — instead of a uniformly quantized tensor.
//!
//! The network's input is the normalised image `(p / 255 − mean[c]) / std[c]` of 8-bit pixels
//! `p`. An [`ImageCodec`] knows that normalisation ([`ImageNormalization`]): it turns the
//! feature back into 8-bit pixels, compresses them with the format's encoder, and the decoder
//! rebuilds exactly the normalised values the data pipeline would have produced from the
//! decoded pixels (the same `f32` arithmetic as `coinfer-data`'s lookup tables), so a lossless
//! format gives the backbone its input bit for bit.
//!
//! Formats: PNG (lossless, the `image` crate's encoder at its best compression), JPEG (the
//! `image` crate's baseline encoder at a quality 1..=100) and WebP, lossy at a quality or
//! lossless (libwebp through the `webp` crate). Grey (1 channel) and RGB (3 channels) inputs.
//!
//! Payload body (after the common header, before the CRC; see [`crate::Payload`]):
//!
//! ```text
//! 8·C    (f32 mean, f32 std) LE per channel: the normalisation the encoder undid
//! per sample b of B:
//!   4    u32 LE length n_b
//!   n_b  the encoded image file (PNG, JPEG or WebP bytes)
//! ```
//!
//! Payload size depends on the image: measure it ([`mean_payload_bits`]) rather than trusting
//! [`CodecId::bits_per_sample`](crate::CodecId::bits_per_sample), which for image codecs is only
//! the size of the uncompressed 8-bit image.

use std::fmt;
use std::io::Cursor;

use ::image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use ::image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use ::image::{ColorType, ExtendedColorType, ImageDecoder, ImageEncoder};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::codec::{CodecId, FeatureCodec, expect_codec, feature_tensor, feature_values};
use crate::error::CodecError;
use crate::payload::{Payload, PayloadHeader, PayloadWriter, check_feature_shape, read_header};

/// Largest side libwebp encodes.
const WEBP_MAX_SIDE: usize = 16383;
/// Largest side a JPEG header can state.
const JPEG_MAX_SIDE: usize = 65535;
/// libwebp's `quality` for lossless WebP, where it is the compression effort (0 fastest,
/// 100 smallest): Pillow's default, 80.
const WEBP_LOSSLESS_EFFORT: f32 = 80.0;

/// An image file format of the input codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// PNG, lossless (DEFLATE with adaptive filtering).
    Png,
    /// Baseline JPEG at a quality 1..=100.
    Jpeg,
    /// Lossy WebP (VP8) at a quality 1..=100.
    Webp,
    /// Lossless WebP (VP8L).
    WebpLossless,
}

impl ImageFormat {
    /// Every format.
    pub const ALL: [ImageFormat; 4] = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Webp,
        ImageFormat::WebpLossless,
    ];

    /// Whether decoding gives back the 8-bit image exactly.
    pub fn is_lossless(self) -> bool {
        matches!(self, ImageFormat::Png | ImageFormat::WebpLossless)
    }

    /// The format's number in payload headers and frame codec words (1..=4).
    pub(crate) fn code(self) -> u8 {
        match self {
            ImageFormat::Png => 1,
            ImageFormat::Jpeg => 2,
            ImageFormat::Webp => 3,
            ImageFormat::WebpLossless => 4,
        }
    }

    /// The format of a code written by [`code`](Self::code).
    pub(crate) fn from_code(code: u8) -> Option<ImageFormat> {
        ImageFormat::ALL.into_iter().find(|f| f.code() == code)
    }

    /// Short lower-case name (`png`, `jpeg`, `webp`, `webp-lossless`).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Webp => "webp",
            ImageFormat::WebpLossless => "webp-lossless",
        }
    }

    /// Largest image side the format (or its encoder) takes.
    fn max_side(self) -> usize {
        match self {
            ImageFormat::Png => u32::MAX as usize,
            ImageFormat::Jpeg => JPEG_MAX_SIDE,
            ImageFormat::Webp | ImageFormat::WebpLossless => WEBP_MAX_SIDE,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks an image codec's quality: 1..=100 for a lossy format, 0 for a lossless one.
pub(crate) fn check_quality(format: ImageFormat, quality: u8) -> Result<(), CodecError> {
    let ok = if format.is_lossless() {
        quality == 0
    } else {
        (1..=100).contains(&quality)
    };
    if ok {
        Ok(())
    } else {
        Err(CodecError::InvalidParameter {
            field: "quality",
            value: format!("{quality} ({format})"),
            reason: "a lossy image format takes a quality in 1..=100, a lossless one 0",
        })
    }
}

/// The per-channel normalisation of the network input, `(p / 255 − mean[c]) / std[c]`, that an
/// [`ImageCodec`] undoes before compressing and redoes after decoding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageNormalization {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl ImageNormalization {
    /// A checked normalisation: one finite mean and one finite positive std per channel, for 1
    /// (grey) or 3 (RGB) channels.
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] naming `mean` or `std`.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Self, CodecError> {
        let bad = |field, value: String, reason| CodecError::InvalidParameter {
            field,
            value,
            reason,
        };
        if !matches!(mean.len(), 1 | 3) || std.len() != mean.len() {
            return Err(bad(
                "mean",
                format!("{} means and {} stds", mean.len(), std.len()),
                "image codecs take 1 (grey) or 3 (RGB) channels, one mean and one std each",
            ));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(bad("mean", m.to_string(), "must be finite"));
        }
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(bad("std", s.to_string(), "must be finite and positive"));
        }
        Ok(Self { mean, std })
    }

    /// The identity on `[0, 1]` pixels (mean 0, std 1) for `channels` channels (1 or 3).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn unit(channels: usize) -> Result<Self, CodecError> {
        Self::new(vec![0.0; channels], vec![1.0; channels])
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.mean.len()
    }

    /// Mean per channel.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Std per channel.
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// For every channel, the normalised value of each of the 256 pixel values — the same
    /// expression as the data pipeline's, so lossless formats round-trip bit for bit.
    fn tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&mean, &std)| std::array::from_fn(|p| (p as f32 / 255.0 - mean) / std))
            .collect()
    }
}

/// The input image compressed as PNG, JPEG or WebP (see the [module docs](self)).
///
/// ```
/// use burn::prelude::*;
/// use coinfer_codec::{FeatureCodec, ImageCodec, ImageFormat, ImageNormalization};
///
/// let device = Device::default();
/// let norm = ImageNormalization::new(vec![0.5], vec![0.25])?;
/// // A 1×1×4×4 grey image of pixels 0, 17, 34, …, 255, normalised.
/// let values: Vec<f32> = (0..16).map(|i| (i as f32 * 17.0 / 255.0 - 0.5) / 0.25).collect();
/// let image = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 1, 4, 4]), &device);
/// let png = ImageCodec::new(ImageFormat::Png, 0, norm)?;
/// let payload = png.encode(image)?;
/// let back = png.decode(&payload.bytes, &device)?;
/// assert_eq!(back.into_data().to_vec::<f32>().unwrap(), values); // lossless, bit for bit
/// # Ok::<(), coinfer_codec::CodecError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ImageCodec {
    format: ImageFormat,
    quality: u8,
    normalization: ImageNormalization,
}

impl ImageCodec {
    /// A codec of `format` at `quality` (1..=100 for JPEG and lossy WebP, 0 for PNG and
    /// lossless WebP) for inputs normalised by `normalization`.
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] for a quality outside the format's range.
    pub fn new(
        format: ImageFormat,
        quality: u8,
        normalization: ImageNormalization,
    ) -> Result<Self, CodecError> {
        check_quality(format, quality)?;
        Ok(Self {
            format,
            quality,
            normalization,
        })
    }

    /// The codec an [`CodecId::Image`] names.
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] for another kind of id or a bad quality.
    pub fn from_id(id: CodecId, normalization: ImageNormalization) -> Result<Self, CodecError> {
        match id {
            CodecId::Image { format, quality } => Self::new(format, quality, normalization),
            other => Err(CodecError::InvalidParameter {
                field: "codec id",
                value: other.to_string(),
                reason: "not an image codec",
            }),
        }
    }

    /// The format.
    pub fn format(&self) -> ImageFormat {
        self.format
    }

    /// The quality (0 for lossless formats).
    pub fn quality(&self) -> u8 {
        self.quality
    }

    /// The normalisation the encoder undoes.
    pub fn normalization(&self) -> &ImageNormalization {
        &self.normalization
    }

    /// The 8-bit pixels `[B, C, H, W]` of normalised NCHW values: `round((x·std + mean)·255)`,
    /// clamped to `0..=255` — the inverse of the data pipeline's normalisation.
    ///
    /// # Errors
    /// [`CodecError::ShapeMismatch`] for a channel count other than the normalisation's,
    /// [`CodecError::NonFiniteFeature`] for a NaN or an infinity.
    pub fn pixels(&self, values: &[f32], shape: [usize; 4]) -> Result<Vec<u8>, CodecError> {
        let elements = check_feature_shape(shape)?;
        let [_, c, h, w] = shape;
        if c != self.normalization.channels() {
            return Err(CodecError::ShapeMismatch {
                what: "image codec input channels",
                expected: format!("{} (the normalisation's)", self.normalization.channels()),
                found: c.to_string(),
            });
        }
        if values.len() != elements {
            return Err(CodecError::ShapeMismatch {
                what: "feature values",
                expected: format!("{shape:?} = {elements} elements"),
                found: format!("{} elements", values.len()),
            });
        }
        let plane = h * w;
        let mut pixels = Vec::with_capacity(elements);
        for (index, &x) in values.iter().enumerate() {
            if !x.is_finite() {
                return Err(CodecError::NonFiniteFeature { index, value: x });
            }
            let channel = (index / plane) % c;
            let p =
                (x * self.normalization.std[channel] + self.normalization.mean[channel]) * 255.0;
            pixels.push(p.round().clamp(0.0, 255.0) as u8);
        }
        Ok(pixels)
    }

    /// Encodes NCHW values of `shape`: one image file per sample.
    ///
    /// # Errors
    /// As [`pixels`](Self::pixels); [`CodecError::InvalidShape`] for a side the format cannot
    /// hold; [`CodecError::Image`] when the format's encoder fails.
    pub fn encode_values(&self, values: &[f32], shape: [usize; 4]) -> Result<Payload, CodecError> {
        let pixels = self.pixels(values, shape)?;
        self.encode_pixels(&pixels, shape)
    }

    /// Encodes 8-bit NCHW pixels of `shape` with the normalisation of this codec.
    ///
    /// # Errors
    /// As [`encode_values`](Self::encode_values).
    pub fn encode_pixels(&self, pixels: &[u8], shape: [usize; 4]) -> Result<Payload, CodecError> {
        let elements = check_feature_shape(shape)?;
        let [b, c, h, w] = shape;
        if pixels.len() != elements || c != self.normalization.channels() {
            return Err(CodecError::ShapeMismatch {
                what: "image pixels",
                expected: format!(
                    "{shape:?} = {elements} pixels over {} channels",
                    self.normalization.channels()
                ),
                found: format!("{} pixels", pixels.len()),
            });
        }
        let side = self.format.max_side();
        if h > side || w > side {
            return Err(CodecError::InvalidShape {
                shape: shape.map(|d| d as u64),
                reason: format!("{} images are at most {side} pixels a side", self.format),
            });
        }
        let sample_len = c * h * w;
        let mut files = Vec::with_capacity(b);
        for (sample, planar) in pixels.chunks_exact(sample_len).enumerate() {
            let interleaved = interleave(planar, c, h * w);
            files.push(
                self.encode_image(&interleaved, c, [h, w])
                    .map_err(|reason| self.image_error(sample, reason))?,
            );
        }
        let header = PayloadHeader {
            codec: self.id(),
            shape,
            entropy_coded_body: false,
        };
        let body_len: usize = 8 * c + files.iter().map(|f| 4 + f.len()).sum::<usize>();
        let mut writer = PayloadWriter::new(&header, body_len);
        let bytes = writer.bytes_mut();
        for (mean, std) in self.normalization.mean.iter().zip(&self.normalization.std) {
            bytes.extend_from_slice(&mean.to_le_bytes());
            bytes.extend_from_slice(&std.to_le_bytes());
        }
        for file in &files {
            let len = u32::try_from(file.len()).map_err(|_| {
                self.image_error(0, format!("an encoded image of {} bytes", file.len()))
            })?;
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(file);
        }
        Ok(writer.finish())
    }

    /// Decodes a payload into 8-bit NCHW pixels, the normalisation it carries and its shape.
    ///
    /// # Errors
    /// Any header error, [`CodecError::CodecMismatch`], [`CodecError::Truncated`] or
    /// [`CodecError::LengthMismatch`] for a body that does not hold the header's samples,
    /// [`CodecError::InvalidRange`] for a stored mean or std that is not finite (or a std that
    /// is not positive), [`CodecError::Image`] for an image file that does not decode to the
    /// header's size and colour.
    pub fn decode_pixels(
        &self,
        payload: &[u8],
    ) -> Result<(Vec<u8>, ImageNormalization, [usize; 4]), CodecError> {
        let (header, sections) = read_header(payload)?;
        expect_codec(self.id(), header.codec)?;
        let [b, c, h, w] = header.shape;
        if !matches!(c, 1 | 3) {
            return Err(CodecError::ShapeMismatch {
                what: "image payload channels",
                expected: "1 (grey) or 3 (RGB)".into(),
                found: c.to_string(),
            });
        }
        let norm_len = 8 * c;
        if sections.len() < norm_len {
            return Err(CodecError::Truncated {
                field: "image normalisation",
                needed_end: crate::payload::HEADER_LEN + norm_len,
                len: payload.len(),
            });
        }
        let (norm_bytes, mut rest) = sections.split_at(norm_len);
        let mut mean = Vec::with_capacity(c);
        let mut std = Vec::with_capacity(c);
        for (index, pair) in norm_bytes.chunks_exact(8).enumerate() {
            let m = f32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
            let s = f32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
            if !(m.is_finite() && s.is_finite() && s > 0.0) {
                return Err(CodecError::InvalidRange {
                    index,
                    min: m,
                    max: s,
                    reason: "an image payload's (mean, std) must be finite with std > 0",
                });
            }
            mean.push(m);
            std.push(s);
        }
        let normalization = ImageNormalization { mean, std };
        let sample_len = c * h * w;
        let mut pixels = Vec::with_capacity(header.elements());
        for sample in 0..b {
            if rest.len() < 4 {
                return Err(CodecError::Truncated {
                    field: "image length",
                    needed_end: payload.len() - crate::payload::CRC_LEN - rest.len() + 4,
                    len: payload.len(),
                });
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if rest.len() - 4 < len {
                return Err(CodecError::LengthMismatch {
                    field: "image file",
                    expected: len,
                    found: rest.len() - 4,
                });
            }
            let file = &rest[4..4 + len];
            rest = &rest[4 + len..];
            let interleaved = self
                .decode_image(file, c, [h, w])
                .map_err(|reason| self.image_error(sample, reason))?;
            debug_assert_eq!(interleaved.len(), sample_len);
            pixels.extend(deinterleave(&interleaved, c, h * w));
        }
        if !rest.is_empty() {
            return Err(CodecError::LengthMismatch {
                field: "image payload body",
                expected: 0,
                found: rest.len(),
            });
        }
        Ok((pixels, normalization, header.shape))
    }

    /// Decodes a payload into normalised NCHW values and their shape.
    ///
    /// # Errors
    /// As [`decode_pixels`](Self::decode_pixels).
    pub fn decode_values(&self, payload: &[u8]) -> Result<(Vec<f32>, [usize; 4]), CodecError> {
        let (pixels, normalization, shape) = self.decode_pixels(payload)?;
        let tables = normalization.tables();
        let c = shape[1];
        let plane = shape[2] * shape[3];
        let values = pixels
            .iter()
            .enumerate()
            .map(|(i, &p)| tables[(i / plane) % c][p as usize])
            .collect();
        Ok((values, shape))
    }

    fn image_error(&self, sample: usize, reason: String) -> CodecError {
        CodecError::Image {
            codec: self.id().to_string(),
            sample,
            reason,
        }
    }

    /// One image file of interleaved 8-bit pixels (`channels` 1 or 3).
    fn encode_image(
        &self,
        interleaved: &[u8],
        channels: usize,
        [h, w]: [usize; 2],
    ) -> Result<Vec<u8>, String> {
        let (width, height) = (w as u32, h as u32);
        let color = if channels == 1 {
            ExtendedColorType::L8
        } else {
            ExtendedColorType::Rgb8
        };
        let mut out = Vec::new();
        match self.format {
            ImageFormat::Png => {
                PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
                    .write_image(interleaved, width, height, color)
                    .map_err(|e| e.to_string())?
            }
            ImageFormat::Jpeg => JpegEncoder::new_with_quality(&mut out, self.quality)
                .write_image(interleaved, width, height, color)
                .map_err(|e| e.to_string())?,
            ImageFormat::Webp | ImageFormat::WebpLossless => {
                // libwebp takes RGB: a grey image goes in as R = G = B (its chroma is flat).
                let rgb: Vec<u8> = if channels == 1 {
                    interleaved.iter().flat_map(|&p| [p, p, p]).collect()
                } else {
                    interleaved.to_vec()
                };
                let lossless = self.format == ImageFormat::WebpLossless;
                let quality = if lossless {
                    WEBP_LOSSLESS_EFFORT
                } else {
                    f32::from(self.quality)
                };
                let memory = webp::Encoder::new(&rgb, webp::PixelLayout::Rgb, width, height)
                    .encode_simple(lossless, quality)
                    .map_err(|e| format!("libwebp: {e:?}"))?;
                out.extend_from_slice(&memory);
            }
        }
        Ok(out)
    }

    /// Decodes one image file into interleaved 8-bit pixels of `channels` channels, after
    /// checking its size and colour against the payload header's.
    fn decode_image(
        &self,
        file: &[u8],
        channels: usize,
        [h, w]: [usize; 2],
    ) -> Result<Vec<u8>, String> {
        let expected_color = if channels == 1 {
            ColorType::L8
        } else {
            ColorType::Rgb8
        };
        let check_size = |width: u32, height: u32| {
            if (width as usize, height as usize) == (w, h) {
                Ok(())
            } else {
                Err(format!(
                    "the file is {width}×{height}, the header says {w}×{h}"
                ))
            }
        };
        let read = |decoder: &dyn DecoderInfo| -> Result<(), String> {
            let (width, height) = decoder.size();
            check_size(width, height)?;
            let color = decoder.color();
            if color != expected_color {
                return Err(format!(
                    "the file holds {color:?} pixels, the header says {expected_color:?}"
                ));
            }
            Ok(())
        };
        let mut buf = vec![0u8; channels * h * w];
        match self.format {
            ImageFormat::Png => {
                let decoder = PngDecoder::new(Cursor::new(file)).map_err(|e| e.to_string())?;
                read(&decoder)?;
                decoder.read_image(&mut buf).map_err(|e| e.to_string())?;
            }
            ImageFormat::Jpeg => {
                let decoder = JpegDecoder::new(Cursor::new(file)).map_err(|e| e.to_string())?;
                read(&decoder)?;
                decoder.read_image(&mut buf).map_err(|e| e.to_string())?;
            }
            ImageFormat::Webp | ImageFormat::WebpLossless => {
                let features = webp::BitstreamFeatures::new(file)
                    .ok_or_else(|| "not a WebP bitstream".to_string())?;
                check_size(features.width(), features.height())?;
                if features.has_animation() {
                    return Err("an animated WebP".into());
                }
                let lossless = matches!(features.format(), Some(webp::BitstreamFormat::Lossless));
                if lossless != (self.format == ImageFormat::WebpLossless) {
                    return Err(format!(
                        "a {} WebP bitstream where the codec sends {}",
                        if lossless { "lossless" } else { "lossy" },
                        self.format
                    ));
                }
                let image = webp::Decoder::new(file)
                    .decode()
                    .ok_or_else(|| "libwebp could not decode the bitstream".to_string())?;
                check_size(image.width(), image.height())?;
                let stride = if image.is_alpha() { 4 } else { 3 };
                if image.len() != stride * h * w {
                    return Err(format!(
                        "libwebp returned {} bytes for {w}×{h} pixels",
                        image.len()
                    ));
                }
                for (dst, px) in buf
                    .chunks_exact_mut(channels)
                    .zip(image.chunks_exact(stride))
                {
                    if channels == 1 {
                        // R = G = B went in; lossy chroma may drift by a step, so average.
                        let sum = u16::from(px[0]) + u16::from(px[1]) + u16::from(px[2]);
                        dst[0] = ((sum + 1) / 3) as u8;
                    } else {
                        dst.copy_from_slice(&px[..3]);
                    }
                }
            }
        }
        Ok(buf)
    }
}

/// Size and colour of a decoder that has read its header.
trait DecoderInfo {
    fn size(&self) -> (u32, u32);
    fn color(&self) -> ColorType;
}

impl<T: ImageDecoder> DecoderInfo for T {
    fn size(&self) -> (u32, u32) {
        self.dimensions()
    }

    fn color(&self) -> ColorType {
        self.color_type()
    }
}

/// Planar `C × (H·W)` pixels to interleaved `(H·W) × C`.
fn interleave(planar: &[u8], channels: usize, plane: usize) -> Vec<u8> {
    if channels == 1 {
        return planar.to_vec();
    }
    let mut out = vec![0u8; planar.len()];
    for (c, channel) in planar.chunks_exact(plane).enumerate() {
        for (i, &p) in channel.iter().enumerate() {
            out[i * channels + c] = p;
        }
    }
    out
}

/// Interleaved `(H·W) × C` pixels to planar `C × (H·W)`.
fn deinterleave(interleaved: &[u8], channels: usize, plane: usize) -> Vec<u8> {
    if channels == 1 {
        return interleaved.to_vec();
    }
    let mut out = vec![0u8; interleaved.len()];
    for (i, px) in interleaved.chunks_exact(channels).enumerate() {
        for (c, &p) in px.iter().enumerate() {
            out[c * plane + i] = p;
        }
    }
    out
}

impl FeatureCodec for ImageCodec {
    fn id(&self) -> CodecId {
        CodecId::Image {
            format: self.format,
            quality: self.quality,
        }
    }

    fn encode(&self, feature: Tensor<4>) -> Result<Payload, CodecError> {
        let (values, shape) = feature_values(feature)?;
        self.encode_values(&values, shape)
    }

    fn decode(&self, payload: &[u8], device: &Device) -> Result<Tensor<4>, CodecError> {
        let (values, shape) = self.decode_values(payload)?;
        Ok(feature_tensor(values, shape, device))
    }

    // `straight_through` stays the identity: image codecs sit at the raw input, where no
    // device half is trained through them.
}

/// Mean payload bits per sample of `codec` over the samples of `batch`, each encoded alone (a
/// batch of one, as a device sends it): the measured size of codecs whose payload depends on
/// the content (image formats, entropy coding), header and CRC included, rounded to a bit.
///
/// # Errors
/// The codec's encoding errors; [`CodecError::InvalidShape`] for an empty batch.
pub fn mean_payload_bits(codec: &dyn FeatureCodec, batch: Tensor<4>) -> Result<u64, CodecError> {
    let [b, c, h, w] = batch.dims();
    check_feature_shape([b, c, h, w])?;
    let device = batch.device();
    let (values, _) = feature_values(batch)?;
    let sample_len = c * h * w;
    let mut total: u64 = 0;
    for sample in values.chunks_exact(sample_len) {
        let one = feature_tensor(sample.to_vec(), [1, c, h, w], &device);
        total += codec.encode(one)?.bits();
    }
    Ok((total as f64 / b as f64).round() as u64)
}
