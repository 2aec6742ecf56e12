//! Bring your own model: ONNX in, deployable ONNX halves out.
//!
//! [`import`] reads an ONNX CNN classifier (PyTorch, Keras via tf2onnx, ...) into an ordinary
//! [`coinfer_split::Network`]: a [`coinfer_split::NetSpec`] whose blocks are the graph's real
//! blocks (conv-bn-relu, ResNet basic blocks with identity or projection shortcuts,
//! depthwise-separable convolutions, MobileNetV2 inverted residuals, pooling, flatten, linear)
//! plus their weights, so split points fall on block boundaries and pruning keeps the channel
//! dependencies of residual connections. Everything after import (pruning, codecs, profiling,
//! the search, the runtime) is unchanged. What the block form cannot represent is an
//! [`OnnxError`] naming the node, its operator and why.
//!
//! [`export`] writes a deployed plan's halves as `device.onnx` (device half + the learned
//! codec's encoder, ending where bit packing starts) and `edge.onnx` (from the dequantized
//! latent or feature to the logits), plus `codec.json` ([`CodecManifest`]) saying how to
//! quantize between them, so any ONNX runtime can run the plan.
//!
//! ```no_run
//! use burn::prelude::*;
//! use coinfer_onnx::{ImportOptions, import};
//!
//! let device = Device::flex();
//! let imported = import("model.onnx", &ImportOptions::default(), &device)?;
//! println!("{} blocks, {} classes", imported.network.spec().blocks.len(), imported.num_classes);
//! # Ok::<(), coinfer_onnx::OnnxError>(())
//! ```
//!
//! The ONNX messages are declared with prost's derive in [`proto`] (no `protoc`, no build
//! script); docs/onnx.md explains the choice over burn's `onnx-ir`.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod export;
mod graph;
mod import;
pub mod proto;

pub use error::OnnxError;
pub use export::{
    CodecManifest, DEVICE_FILE, EDGE_FILE, EXPORT_OPSET, ExportCodec, MANIFEST_FILE, Quantization,
    export,
};
pub use graph::OPSETS;
pub use import::{
    ImportOptions, Imported, NORMALIZATION_KEY, SUPPORTED, import, import_bytes, import_model_arg,
    is_onnx_path,
};
