//! The raw input's codecs as users would send an image (issue 21): besides the uniform
//! quantizers, the quantized image entropy-coded with the project's rANS coder, PNG, JPEG and
//! WebP. Their payloads depend on the picture, so their bits per sample are measured — the mean
//! payload of images encoded one at a time — rather than taken from a formula.

use burn::prelude::*;
use coinfer_codec::{
    CodecEntry, CodecFamily, CodecId, ImageFormat, ImageNormalization, SharedCodec, input_codec,
    mean_payload_bits,
};
use coinfer_data::{ImageDataset, Normalization};

use crate::AutomlError;
use crate::codecs::CodecSetup;
use crate::evaluator::BankCodec;

/// The image-codec form of the data normalisation, or `None` when image codecs cannot carry
/// the input (neither 1 nor 3 channels).
pub fn image_normalization(norm: &Normalization) -> Option<ImageNormalization> {
    ImageNormalization::new(norm.mean.clone(), norm.std.clone()).ok()
}

/// The codec of `id` for inputs normalised by `norm`: image codecs undo and redo the
/// normalisation; every other fixed codec is [`coinfer_codec::fixed_codec`]'s.
///
/// # Errors
/// [`AutomlError::InvalidConfig`] for an image codec over an input that is neither grey nor
/// RGB; codec errors for bad parameters or an autoencoder id.
pub fn codec_for_input(id: CodecId, norm: &Normalization) -> Result<SharedCodec, AutomlError> {
    if id.is_image() {
        let image_norm = image_normalization(norm).ok_or_else(|| AutomlError::InvalidConfig {
            field: "codecs",
            reason: format!(
                "image codec {id} needs a grey or RGB input; the normalisation has {} channels",
                norm.channels()
            ),
        })?;
        return Ok(input_codec(id, &image_norm)?);
    }
    Ok(coinfer_codec::fixed_codec(id)?)
}

/// Whether a codec's payload size depends on the content (image files, entropy coding), so
/// that its bits per sample must be measured.
pub fn measured_size(id: CodecId) -> bool {
    match id {
        CodecId::Image { .. } => true,
        CodecId::Quant { entropy, .. } | CodecId::Autoencoder { entropy, .. } => entropy,
        CodecId::Float32 => false,
    }
}

/// The input codecs `setup` adds to the quantizers: each quantizer rANS-coded, then PNG,
/// JPEG and WebP at their qualities, and lossless WebP — the image ones only for a grey or RGB
/// input.
pub(crate) fn extra_input_ids(setup: &CodecSetup, channels: usize) -> Vec<CodecId> {
    let mut ids = Vec::new();
    if setup.input_entropy {
        ids.extend(setup.quant_bits.iter().map(|&bits| CodecId::Quant {
            bits,
            per_channel: false,
            entropy: true,
        }));
    }
    if !matches!(channels, 1 | 3) {
        return ids;
    }
    if setup.input_png {
        ids.push(CodecId::image(ImageFormat::Png, 0));
    }
    ids.extend(
        setup
            .input_jpeg_qualities
            .iter()
            .map(|&q| CodecId::image(ImageFormat::Jpeg, q)),
    );
    ids.extend(
        setup
            .input_webp_qualities
            .iter()
            .map(|&q| CodecId::image(ImageFormat::Webp, q)),
    );
    if setup.input_webp_lossless {
        ids.push(CodecId::image(ImageFormat::WebpLossless, 0));
    }
    ids
}

/// Checks the input-codec fields of a codec setup.
pub(crate) fn check_setup(setup: &CodecSetup) -> Result<(), AutomlError> {
    let bad =
        |field: &'static str, reason: String| Err(AutomlError::InvalidConfig { field, reason });
    if let Some(q) = setup
        .input_jpeg_qualities
        .iter()
        .find(|q| !(1..=100).contains(*q))
    {
        return bad(
            "codecs.input_jpeg_qualities",
            format!("{q} is outside 1..=100"),
        );
    }
    if let Some(q) = setup
        .input_webp_qualities
        .iter()
        .find(|q| !(1..=100).contains(*q))
    {
        return bad(
            "codecs.input_webp_qualities",
            format!("{q} is outside 1..=100"),
        );
    }
    if setup.input_measure_images == 0 {
        return bad(
            "codecs.input_measure_images",
            "the measured codec sizes need at least one image".into(),
        );
    }
    Ok(())
}

/// The input images the content-dependent codecs of split 0 are measured on: the first
/// `setup.input_measure_images` of `train`, normalised.
pub(crate) fn measure_sample(
    train: &ImageDataset,
    norm: &Normalization,
    setup: &CodecSetup,
    device: &Device,
) -> Result<Tensor<4>, AutomlError> {
    let n = setup.input_measure_images.min(train.len());
    if n == 0 {
        return Err(AutomlError::InvalidConfig {
            field: "codecs.input_measure_images",
            reason: "no training image to measure the input codecs' payloads on".into(),
        });
    }
    let indices: Vec<usize> = (0..n).collect();
    Ok(train.batch(&indices, norm, device)?.0)
}

/// The family of one split point, sorted as [`CodecFamily`] sorts (by size, ties by name),
/// and the bank's codecs in the same order. With `sample` (the raw input's images), the sizes
/// of content-dependent codecs are measured on it, one image per payload; every other size
/// comes from [`CodecId::bits_per_sample`].
pub(crate) fn sized_family(
    shape: [usize; 3],
    codecs: Vec<BankCodec>,
    sample: Option<&Tensor<4>>,
) -> Result<(CodecFamily, Vec<BankCodec>), AutomlError> {
    let mut sized = Vec::with_capacity(codecs.len());
    for codec in codecs {
        let id = codec.codec().id();
        let bits = match sample {
            Some(images) if measured_size(id) => mean_payload_bits(codec.codec(), images.clone())?,
            _ => id.bits_per_sample(shape),
        };
        sized.push((bits, id.to_string(), codec));
    }
    sized.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut family = CodecFamily::new(shape);
    let mut bank = Vec::with_capacity(sized.len());
    for (bits, _, codec) in sized {
        family.push(CodecEntry {
            id: codec.codec().id(),
            bits_per_sample: bits,
            accuracy: None,
        });
        bank.push(codec);
    }
    Ok((family, bank))
}
