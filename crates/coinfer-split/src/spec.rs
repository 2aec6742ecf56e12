//! The network specification: plain serde data describing an ordered list of blocks.
//!
//! A [`NetSpec`] is what the whole pipeline passes around: it is built by the model zoo, pruned
//! by `coinfer-sparsity`, costed by `coinfer-profile`, and turned into a burn module by
//! [`crate::NetModule::from_spec`]. Shapes are inferred, never stored twice, so a spec can only
//! disagree with itself in ways [`NetSpec::check`] reports.

use serde::{Deserialize, Serialize};

use crate::SplitError;

/// The shape of one sample's activation between two blocks (the batch dimension is implied).
///
/// Every activation is kept four-dimensional (`[batch, channels, height, width]`); a flattened
/// vector of `n` features is `channels = n, height = width = 1` with [`flat`](Self::flat) set, so
/// that every block boundary can be a split point with one tensor type on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureShape {
    /// Number of channels (or features, once flattened).
    pub channels: usize,
    /// Spatial height (1 once flattened).
    pub height: usize,
    /// Spatial width (1 once flattened).
    pub width: usize,
    /// Whether the activation is a flat feature vector (after [`BlockSpec::Flatten`]).
    #[serde(default)]
    pub flat: bool,
}

impl FeatureShape {
    /// An image-like activation of `channels × height × width`.
    pub fn image(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            flat: false,
        }
    }

    /// Number of scalars in one sample.
    pub fn elements(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// `[channels, height, width]`.
    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// One block of a network. Input channels are not stored: they follow from the previous block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockSpec {
    /// Convolution (no bias) → batch norm → ReLU.
    ConvBnRelu {
        /// Output channels (filters).
        out_channels: usize,
        /// Square kernel size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Zero padding on every side.
        padding: usize,
    },
    /// ResNet basic block: `relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))`.
    ///
    /// The shortcut is the identity when the stride is 1 and the channels agree, else a 1×1
    /// convolution with batch norm. `mid_channels` is the inner convolution's width: equal to
    /// `out_channels` in a dense network, smaller once the block is pruned (the output stays tied
    /// to the skip path).
    BasicBlock {
        /// Channels of the inner (first) convolution.
        mid_channels: usize,
        /// Output channels of the block.
        out_channels: usize,
        /// Stride of the first convolution and of the projection shortcut.
        stride: usize,
    },
    /// Depthwise-separable convolution (MobileNetV1): a 3×3 depthwise convolution (one filter
    /// per input channel, stride `stride`, padding 1) → batch norm → ReLU6, then a 1×1
    /// pointwise convolution to `out_channels` → batch norm → ReLU.
    ///
    /// Pruning removes pointwise filters (`out_channels`); the next block loses the matching
    /// input channels.
    DepthwiseSeparable {
        /// Output channels of the pointwise convolution.
        out_channels: usize,
        /// Stride of the depthwise convolution.
        stride: usize,
    },
    /// MobileNetV2 inverted residual with a linear bottleneck: a 1×1 expansion convolution to
    /// `expand_channels` → batch norm → ReLU6, a 3×3 depthwise convolution (stride `stride`,
    /// padding 1) → batch norm → ReLU6, a 1×1 projection to `out_channels` → batch norm with no
    /// activation, plus the block's input when the stride is 1 and the input has
    /// `out_channels` channels (identity shortcut; otherwise there is none).
    ///
    /// The expansion convolution is always present (also for an expansion factor of 1).
    /// `expand_channels` is `t · in_channels` in a dense network, smaller once pruning removed
    /// expansion filters (the depthwise convolution and the projection's inputs shrink with
    /// them; the output stays tied to the bottleneck).
    InvertedResidual {
        /// Channels after the expansion (the depthwise convolution's width).
        expand_channels: usize,
        /// Output channels of the projection.
        out_channels: usize,
        /// Stride of the depthwise convolution.
        stride: usize,
    },
    /// Max pooling.
    MaxPool {
        /// Square window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on every side.
        padding: usize,
    },
    /// Average pooling (padding counted in the average, as in PyTorch's default).
    AvgPool {
        /// Square window size.
        kernel: usize,
        /// Stride.
        stride: usize,
        /// Padding on every side.
        padding: usize,
    },
    /// Global average pooling to `channels × 1 × 1`.
    GlobalAvgPool,
    /// Flatten `channels × height × width` into a feature vector.
    Flatten,
    /// Fully connected layer on a flat feature vector.
    Linear {
        /// Output features.
        out_features: usize,
        /// Whether a ReLU follows (hidden layers); the classifier head has none.
        relu: bool,
    },
}

impl BlockSpec {
    /// Whether an [`InvertedResidual`](BlockSpec::InvertedResidual) with this `stride` and
    /// `out_channels` adds its input (identity shortcut) when it gets `in_channels` channels.
    pub fn inverted_residual_adds_input(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
    ) -> bool {
        stride == 1 && in_channels == out_channels
    }

    /// A short lowercase name of the block kind, as used in tables.
    pub fn kind(&self) -> &'static str {
        match self {
            BlockSpec::ConvBnRelu { .. } => "conv_bn_relu",
            BlockSpec::BasicBlock { .. } => "basic_block",
            BlockSpec::DepthwiseSeparable { .. } => "depthwise_separable",
            BlockSpec::InvertedResidual { .. } => "inverted_residual",
            BlockSpec::MaxPool { .. } => "max_pool",
            BlockSpec::AvgPool { .. } => "avg_pool",
            BlockSpec::GlobalAvgPool => "global_avg_pool",
            BlockSpec::Flatten => "flatten",
            BlockSpec::Linear { .. } => "linear",
        }
    }

    /// The output shape of this block for the given input shape, or why it cannot run on it.
    ///
    /// `index` is only used to name the block in the error.
    pub fn output_shape(
        &self,
        index: usize,
        input: FeatureShape,
    ) -> Result<FeatureShape, SplitError> {
        let fail = |reason: String| SplitError::InvalidBlock {
            index,
            kind: self.kind(),
            reason,
        };
        let needs_image = |what: &str| -> Result<(), SplitError> {
            if input.flat {
                Err(fail(format!(
                    "{what} needs an image-shaped input but gets a flat vector of {} features",
                    input.channels
                )))
            } else {
                Ok(())
            }
        };
        let positive = |name: &str, value: usize| -> Result<(), SplitError> {
            if value == 0 {
                Err(fail(format!("{name} must be at least 1")))
            } else {
                Ok(())
            }
        };
        let window =
            |kernel: usize, stride: usize, padding: usize| -> Result<(usize, usize), SplitError> {
                positive("kernel", kernel)?;
                positive("stride", stride)?;
                if padding * 2 > kernel {
                    return Err(fail(format!(
                        "padding {padding} is more than half the kernel {kernel}"
                    )));
                }
                let out = |size: usize| -> Result<usize, SplitError> {
                    let padded = size + 2 * padding;
                    if padded < kernel {
                        return Err(fail(format!(
                            "kernel {kernel} is larger than the padded input {padded}×{padded} \
                         (input {}×{})",
                            input.height, input.width
                        )));
                    }
                    Ok((padded - kernel) / stride + 1)
                };
                Ok((out(input.height)?, out(input.width)?))
            };
        match *self {
            BlockSpec::ConvBnRelu {
                out_channels,
                kernel,
                stride,
                padding,
            } => {
                needs_image("a convolution")?;
                positive("out_channels", out_channels)?;
                let (h, w) = window(kernel, stride, padding)?;
                Ok(FeatureShape::image(out_channels, h, w))
            }
            BlockSpec::BasicBlock {
                mid_channels,
                out_channels,
                stride,
            } => {
                needs_image("a residual block")?;
                positive("mid_channels", mid_channels)?;
                positive("out_channels", out_channels)?;
                let (h, w) = window(3, stride, 1)?;
                Ok(FeatureShape::image(out_channels, h, w))
            }
            BlockSpec::DepthwiseSeparable {
                out_channels,
                stride,
            } => {
                needs_image("a depthwise-separable convolution")?;
                positive("out_channels", out_channels)?;
                let (h, w) = window(3, stride, 1)?;
                Ok(FeatureShape::image(out_channels, h, w))
            }
            BlockSpec::InvertedResidual {
                expand_channels,
                out_channels,
                stride,
            } => {
                needs_image("an inverted residual block")?;
                positive("expand_channels", expand_channels)?;
                positive("out_channels", out_channels)?;
                let (h, w) = window(3, stride, 1)?;
                Ok(FeatureShape::image(out_channels, h, w))
            }
            BlockSpec::MaxPool {
                kernel,
                stride,
                padding,
            }
            | BlockSpec::AvgPool {
                kernel,
                stride,
                padding,
            } => {
                needs_image("pooling")?;
                let (h, w) = window(kernel, stride, padding)?;
                Ok(FeatureShape::image(input.channels, h, w))
            }
            BlockSpec::GlobalAvgPool => {
                needs_image("global pooling")?;
                Ok(FeatureShape::image(input.channels, 1, 1))
            }
            BlockSpec::Flatten => {
                if input.flat {
                    return Err(fail("the input is already flat".into()));
                }
                Ok(FeatureShape {
                    channels: input.elements(),
                    height: 1,
                    width: 1,
                    flat: true,
                })
            }
            BlockSpec::Linear { out_features, .. } => {
                if !input.flat {
                    return Err(fail(format!(
                        "a linear layer needs a flat input; got {}×{}×{} (add a flatten block)",
                        input.channels, input.height, input.width
                    )));
                }
                positive("out_features", out_features)?;
                Ok(FeatureShape {
                    channels: out_features,
                    height: 1,
                    width: 1,
                    flat: true,
                })
            }
        }
    }
}

/// A whole network: input shape and ordered blocks.
///
/// ```
/// use coinfer_split::{zoo, NetSpec};
///
/// let spec: NetSpec = zoo::resnet_mini(10);
/// let shapes = spec.shapes()?;
/// assert_eq!(shapes.len(), spec.blocks.len() + 1);
/// assert_eq!(shapes.last().unwrap().channels, 10);
/// # Ok::<(), coinfer_split::SplitError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSpec {
    /// A human-readable name, e.g. `resnet-mini`.
    pub name: String,
    /// Shape of one input sample (an image for a whole network; the cut's shape for an edge half).
    pub input: FeatureShape,
    /// The blocks, in execution order.
    pub blocks: Vec<BlockSpec>,
}

impl NetSpec {
    /// The activation shapes at every block boundary: `shapes[0]` is the input, `shapes[i + 1]`
    /// the output of block `i`. Fails on the first block whose shapes do not chain.
    pub fn shapes(&self) -> Result<Vec<FeatureShape>, SplitError> {
        if self.input.elements() == 0 {
            return Err(SplitError::InvalidInput {
                input: self.input.dims(),
            });
        }
        let mut shapes = Vec::with_capacity(self.blocks.len() + 1);
        let mut shape = self.input;
        shapes.push(shape);
        for (index, block) in self.blocks.iter().enumerate() {
            shape = block.output_shape(index, shape)?;
            shapes.push(shape);
        }
        Ok(shapes)
    }

    /// Checks that the shapes chain and that the network ends in a flat vector of logits.
    pub fn check(&self) -> Result<(), SplitError> {
        if self.blocks.is_empty() {
            return Err(SplitError::EmptyNetwork);
        }
        let shapes = self.shapes()?;
        let last = shapes[shapes.len() - 1];
        if !last.flat {
            return Err(SplitError::NoClassifierHead { shape: last.dims() });
        }
        Ok(())
    }

    /// Number of classes (width of the output vector); call [`check`](Self::check) first.
    pub fn num_classes(&self) -> Result<usize, SplitError> {
        let shapes = self.shapes()?;
        Ok(shapes[shapes.len() - 1].channels)
    }

    /// Block boundaries where the network may be cut: `1..blocks.len()`, i.e. after block
    /// `s - 1`, leaving at least one block on each side.
    pub fn split_points(&self) -> std::ops::Range<usize> {
        1..self.blocks.len()
    }

    /// The blocks `[0, at)` (device half) and `[at, len)` (edge half) as two specs; the edge
    /// half's input is the activation shape at the cut. `at` may be `0` (edge only) or
    /// `blocks.len()` (device only), in which case one half has no blocks.
    pub fn split(&self, at: usize) -> Result<(NetSpec, NetSpec), SplitError> {
        if at > self.blocks.len() {
            return Err(SplitError::SplitOutOfRange {
                at,
                blocks: self.blocks.len(),
            });
        }
        let shapes = self.shapes()?;
        let cut = shapes[at];
        let device = NetSpec {
            name: format!("{}[..{at}]", self.name),
            input: self.input,
            blocks: self.blocks[..at].to_vec(),
        };
        let edge = NetSpec {
            name: format!("{}[{at}..]", self.name),
            input: cut,
            blocks: self.blocks[at..].to_vec(),
        };
        Ok((device, edge))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zoo;

    #[test]
    fn resnet_mini_shapes_chain() {
        let spec = zoo::resnet_mini(10);
        spec.check().unwrap();
        let shapes: Vec<([usize; 3], bool)> = spec
            .shapes()
            .unwrap()
            .iter()
            .map(|s| (s.dims(), s.flat))
            .collect();
        // By hand: a 3×3 convolution with padding 1 and stride 2 maps n to (n + 2 - 3) / 2 + 1,
        // so 28 → 14 (stem) → 7 (first block) → 4 (second block); the third block keeps 4×4.
        let expected = [
            ([1, 28, 28], false),
            ([32, 14, 14], false),
            ([32, 7, 7], false),
            ([64, 4, 4], false),
            ([128, 4, 4], false),
            ([128, 1, 1], false),
            ([128, 1, 1], true),
            ([10, 1, 1], true),
        ];
        assert_eq!(shapes, expected);
        assert_eq!(spec.num_classes().unwrap(), 10);
    }

    #[test]
    fn resnet18_cifar_shapes_chain() {
        let spec = zoo::resnet18_cifar(10);
        spec.check().unwrap();
        let shapes = spec.shapes().unwrap();
        // stem + 8 basic blocks end at 512 × 4 × 4 before global pooling.
        let before_pool = shapes[shapes.len() - 4];
        assert_eq!(before_pool, FeatureShape::image(512, 4, 4));
    }

    #[test]
    fn mobilenetv2_mini_shapes_chain() {
        let spec = zoo::mobilenetv2_mini(10);
        spec.check().unwrap();
        let shapes: Vec<[usize; 3]> = spec.shapes().unwrap().iter().map(|s| s.dims()).collect();
        // By hand: 3×3 stride-2 convolutions with padding 1 map 28 → 14 (stem) → 7
        // (depthwise-separable block) → 4 (second inverted residual); the rest keeps the size.
        let expected = [
            [1, 28, 28],
            [16, 14, 14],
            [16, 7, 7],
            [24, 7, 7],
            [32, 4, 4],
            [32, 4, 4],
            [64, 4, 4],
            [256, 4, 4],
            [256, 1, 1],
            [256, 1, 1],
            [10, 1, 1],
        ];
        assert_eq!(shapes, expected);
        // Expansion factor 6 of each block's input.
        let expands: Vec<usize> = spec
            .blocks
            .iter()
            .filter_map(|b| match b {
                BlockSpec::InvertedResidual {
                    expand_channels, ..
                } => Some(*expand_channels),
                _ => None,
            })
            .collect();
        assert_eq!(expands, [96, 144, 192, 192]);
    }

    #[test]
    fn mobilenetv2_cifar_shapes_chain() {
        let spec = zoo::mobilenetv2_cifar(10);
        spec.check().unwrap();
        let shapes = spec.shapes().unwrap();
        let before_pool = shapes[shapes.len() - 4];
        assert_eq!(before_pool, FeatureShape::image(640, 4, 4));
        assert_eq!(shapes[2], FeatureShape::image(16, 32, 32));
    }

    #[test]
    fn zero_widths_of_mobile_blocks_are_rejected() {
        for bad in [
            BlockSpec::DepthwiseSeparable {
                out_channels: 0,
                stride: 1,
            },
            BlockSpec::DepthwiseSeparable {
                out_channels: 4,
                stride: 0,
            },
            BlockSpec::InvertedResidual {
                expand_channels: 0,
                out_channels: 4,
                stride: 1,
            },
            BlockSpec::InvertedResidual {
                expand_channels: 4,
                out_channels: 0,
                stride: 1,
            },
        ] {
            let spec = NetSpec {
                name: "bad".into(),
                input: FeatureShape::image(2, 8, 8),
                blocks: vec![bad.clone()],
            };
            assert!(
                matches!(
                    spec.shapes(),
                    Err(SplitError::InvalidBlock { index: 0, .. })
                ),
                "{bad:?}"
            );
        }
        let flat = NetSpec {
            name: "bad".into(),
            input: FeatureShape::image(2, 8, 8),
            blocks: vec![
                BlockSpec::Flatten,
                BlockSpec::InvertedResidual {
                    expand_channels: 4,
                    out_channels: 4,
                    stride: 1,
                },
            ],
        };
        assert!(matches!(
            flat.shapes(),
            Err(SplitError::InvalidBlock { index: 1, .. })
        ));
    }

    #[test]
    fn linear_on_image_is_rejected_with_block_index() {
        let spec = NetSpec {
            name: "bad".into(),
            input: FeatureShape::image(1, 8, 8),
            blocks: vec![
                BlockSpec::ConvBnRelu {
                    out_channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
                BlockSpec::Linear {
                    out_features: 10,
                    relu: false,
                },
            ],
        };
        let err = spec.check().unwrap_err();
        match &err {
            SplitError::InvalidBlock { index, kind, .. } => {
                assert_eq!(*index, 1);
                assert_eq!(*kind, "linear");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("block 1"), "{err}");
    }

    #[test]
    fn conv_after_flatten_is_rejected() {
        let spec = NetSpec {
            name: "bad".into(),
            input: FeatureShape::image(1, 8, 8),
            blocks: vec![
                BlockSpec::Flatten,
                BlockSpec::ConvBnRelu {
                    out_channels: 4,
                    kernel: 3,
                    stride: 1,
                    padding: 1,
                },
            ],
        };
        assert!(matches!(
            spec.check(),
            Err(SplitError::InvalidBlock { index: 1, .. })
        ));
    }

    #[test]
    fn kernel_larger_than_input_is_rejected() {
        let spec = NetSpec {
            name: "bad".into(),
            input: FeatureShape::image(1, 4, 4),
            blocks: vec![
                BlockSpec::MaxPool {
                    kernel: 2,
                    stride: 2,
                    padding: 0,
                },
                BlockSpec::MaxPool {
                    kernel: 2,
                    stride: 2,
                    padding: 0,
                },
                BlockSpec::ConvBnRelu {
                    out_channels: 2,
                    kernel: 3,
                    stride: 1,
                    padding: 0,
                },
            ],
        };
        let err = spec.check().unwrap_err();
        assert!(
            matches!(err, SplitError::InvalidBlock { index: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn zero_sizes_and_missing_head_are_rejected() {
        let mut spec = zoo::resnet_mini(10);
        spec.input = FeatureShape::image(1, 0, 28);
        assert!(matches!(spec.check(), Err(SplitError::InvalidInput { .. })));

        let mut spec = zoo::resnet_mini(10);
        spec.blocks.truncate(3);
        assert!(matches!(
            spec.check(),
            Err(SplitError::NoClassifierHead { .. })
        ));

        let empty = NetSpec {
            name: "empty".into(),
            input: FeatureShape::image(1, 28, 28),
            blocks: vec![],
        };
        assert!(matches!(empty.check(), Err(SplitError::EmptyNetwork)));

        let mut spec = zoo::resnet_mini(10);
        if let BlockSpec::ConvBnRelu { stride, .. } = &mut spec.blocks[0] {
            *stride = 0;
        }
        assert!(matches!(
            spec.check(),
            Err(SplitError::InvalidBlock { index: 0, .. })
        ));
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = zoo::resnet_mini(10);
        let json = serde_json::to_string_pretty(&spec).unwrap();
        let back: NetSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(spec, back);
    }

    #[test]
    fn split_spec_halves_chain() {
        let spec = zoo::resnet_mini(10);
        for at in 0..=spec.blocks.len() {
            let (device, edge) = spec.split(at).unwrap();
            assert_eq!(device.blocks.len() + edge.blocks.len(), spec.blocks.len());
            let cut = spec.shapes().unwrap()[at];
            assert_eq!(edge.input, cut);
            if !edge.blocks.is_empty() {
                edge.shapes().unwrap();
            }
        }
        assert!(matches!(
            spec.split(spec.blocks.len() + 1),
            Err(SplitError::SplitOutOfRange { .. })
        ));
    }
}
