//! The backend extension: [`TrainKernels`] on `Flex` and `Autodiff<Flex>`, and the entry
//! points that route a module's forward pass to it.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use burn_flex::FlexTensor;

use crate::Activation;
use crate::conv::{self, ConvGeometry, ConvShape};
use crate::norm;

/// Custom operations of the training kernels, one implementation per backend that has them.
#[backend_extension(Flex, Autodiff)]
pub trait TrainKernels: Backend {
    /// `conv(x, weight) + bias` with `x` `[N, C_in, H, W]`, `weight`
    /// `[C_out, C_in / groups, kh, kw]`, `bias` `[C_out]`.
    fn conv2d_fast(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self>;

    /// Batch normalisation of `x` `[N, C, ...]` with the batch's own statistics `stats`
    /// (training mode; [`batch_stats`](Self::batch_stats) of `x`):
    /// `(x − mean) / sqrt(var + epsilon) · gamma + beta`, differentiable in `x`, `gamma`, `beta`
    /// (the statistics' dependence on `x` included).
    /// A ReLU follows when `relu`.
    fn batch_norm_train_fast(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// [`batch_norm_train_fast`](Self::batch_norm_train_fast) plus `skip` (a residual
    /// connection, `x`'s shape) before the optional ReLU: `relu?(bn(x) + skip)`,
    /// differentiable in `skip` too.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_add_train_fast(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        skip: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// The batch statistics of `x` `[N, C, ...]` as a `[2, C]` tensor (mean, biased variance),
    /// not differentiated.
    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The tensor's values in row-major order (a copy only when it is a strided view).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous f32 tensor")
                .to_vec(),
        ),
    }
}

fn flex_tensor(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

fn conv_shape(x: &FlexTensor, weight: &FlexTensor, geometry: ConvGeometry) -> ConvShape {
    // `conv2d` checked the shapes before choosing the kernels.
    ConvShape::new(dims4(x), dims4(weight), geometry).expect("checked convolution shapes")
}

fn flex_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    geometry: ConvGeometry,
) -> FlexTensor {
    let shape = conv_shape(x, weight, geometry);
    let out = conv::forward(&shape, &values(x), &values(weight), &values(bias));
    flex_tensor(out, shape.output_dims().to_vec())
}

impl TrainKernels for Flex {
    fn conv2d_fast(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        geometry: ConvGeometry,
    ) -> FlexTensor {
        flex_forward(&x, &weight, &bias, geometry)
    }

    fn batch_norm_train_fast(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        flex_batch_norm(&x, &gamma, &beta, &stats, epsilon, None, relu).0
    }

    fn batch_norm_add_train_fast(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        skip: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        flex_batch_norm(&x, &gamma, &beta, &stats, epsilon, Some(&skip), relu).0
    }

    fn batch_stats(x: FlexTensor) -> FlexTensor {
        flex_stats(&x)
    }
}

/// The backward node of [`TrainKernels::batch_norm_train_fast`] (`N = 3` parents: `x`,
/// `gamma`, `beta`) and [`TrainKernels::batch_norm_add_train_fast`] (`N = 4`: and `skip`)
/// under autodiff: the inputs are checkpointed, the batch statistics kept.
#[derive(Debug)]
struct NormBackward<const N: usize>;

/// What [`NormBackward`] keeps: the checkpointed `x`, `gamma`, `beta` and `skip`, the batch
/// statistics, epsilon and whether a ReLU followed.
#[derive(Debug, Clone)]
struct NormState {
    x: NodeId,
    gamma: NodeId,
    beta: NodeId,
    skip: Option<NodeId>,
    mean: Vec<f32>,
    var: Vec<f32>,
    epsilon: f64,
    relu: bool,
}

impl<const N: usize> Backward<Flex, N> for NormBackward<N> {
    type State = NormState;

    fn backward(
        self,
        ops: Ops<Self::State, N>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let parents = ops.parents;
        let dy_tensor = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(state.x);
        let gamma = checkpointer.retrieve_node_output::<FlexTensor>(state.gamma);
        let shape = norm_shape(&x);
        let dims: Vec<usize> = x.layout().shape().iter().copied().collect();
        let stats = (state.mean.as_slice(), state.var.as_slice());
        let (x, gamma) = (values(&x), values(&gamma));
        // Back through the ReLU first: the gradient of the sum `bn(x) + skip`.
        let dy = if state.relu {
            let beta = checkpointer.retrieve_node_output::<FlexTensor>(state.beta);
            let skip = state
                .skip
                .map(|skip| checkpointer.retrieve_node_output::<FlexTensor>(skip));
            let (beta, skip) = (values(&beta), skip.as_ref().map(|skip| values(skip)));
            let input = norm::NormInput {
                shape: &shape,
                x: &x,
                gamma: &gamma,
                beta: &beta,
                stats,
                epsilon: state.epsilon,
                skip: skip.as_deref(),
            };
            std::borrow::Cow::Owned(input.through_relu(&values(&dy_tensor)))
        } else {
            values(&dy_tensor)
        };
        let (dx, dgamma, dbeta) = norm::backward(&shape, &x, &gamma, stats, state.epsilon, &dy);
        // The sum passes its gradient to `skip` unchanged.
        if let Some(Some(node)) = parents.get(3) {
            grads.register::<Flex>(node.id, flex_tensor(dy.into_owned(), dims.clone()));
        }
        let parts = [
            (&parents[0], dx, dims),
            (&parents[1], dgamma, vec![shape.channels]),
            (&parents[2], dbeta, vec![shape.channels]),
        ];
        for (node, grad, dims) in parts {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, flex_tensor(grad, dims));
            }
        }
    }
}

fn norm_shape(x: &FlexTensor) -> norm::NormShape {
    let shape = x.layout().shape();
    norm::NormShape {
        batch: shape[0],
        channels: shape[1],
        plane: shape.iter().skip(2).product(),
    }
}

fn flex_stats(x: &FlexTensor) -> FlexTensor {
    let shape = norm_shape(x);
    let (mut mean, var) = norm::stats(&shape, &values(x));
    mean.extend(var);
    flex_tensor(mean, vec![2, shape.channels])
}

fn flex_batch_norm(
    x: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    stats: &FlexTensor,
    epsilon: f64,
    skip: Option<&FlexTensor>,
    relu: bool,
) -> (FlexTensor, Vec<f32>, Vec<f32>) {
    let shape = norm_shape(x);
    let x_values = values(x);
    let stats = values(stats);
    let (mean, var) = stats.split_at(shape.channels);
    let (mean, var) = (mean.to_vec(), var.to_vec());
    let out = norm::NormInput {
        shape: &shape,
        x: &x_values,
        gamma: &values(gamma),
        beta: &values(beta),
        stats: (&mean, &var),
        epsilon,
        skip: skip.map(values).as_deref(),
    }
    .forward(relu);
    let dims = x.layout().shape().iter().copied().collect();
    (flex_tensor(out, dims), mean, var)
}

/// The backward node of [`TrainKernels::conv2d_fast`] under autodiff.
#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = (NodeId, NodeId, ConvGeometry);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, geometry) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let weight = checkpointer.retrieve_node_output::<FlexTensor>(weight_state);
        let shape = conv_shape(&x, &weight, geometry);
        let grads_out = conv::backward(
            &shape,
            &values(&x),
            &values(&weight),
            &values(&dy),
            [node_x.is_some(), node_weight.is_some(), node_bias.is_some()],
        );
        let parts = [
            (node_x, grads_out.x, dims4(&x).to_vec()),
            (node_weight, grads_out.weight, dims4(&weight).to_vec()),
            (node_bias, grads_out.bias, vec![shape.output_dims()[1]]),
        ];
        for (node, grad, dims) in parts {
            if let (Some(node), Some(grad)) = (node, grad) {
                grads.register::<Flex>(node.id, flex_tensor(grad, dims));
            }
        }
    }
}

impl<C: CheckpointStrategy> TrainKernels for Autodiff<Flex, C> {
    fn conv2d_fast(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: ConvGeometry,
    ) -> FloatTensor<Self> {
        let out = flex_forward(
            x.primitive(),
            weight.primitive(),
            bias.primitive(),
            geometry,
        );
        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                prep.finish((x_state, weight_state, geometry), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn batch_norm_train_fast(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        autodiff_batch_norm::<C, 3>([&x, &gamma, &beta], &stats, epsilon, relu)
    }

    fn batch_norm_add_train_fast(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        skip: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        autodiff_batch_norm::<C, 4>([&x, &gamma, &beta, &skip], &stats, epsilon, relu)
    }

    fn batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(flex_stats(x.primitive()))
    }
}

/// The batch norm ops under autodiff: `inputs` are `x`, `gamma`, `beta` and, with `N = 4`,
/// `skip`; the forward kernel runs once, then the node is tracked or not.
fn autodiff_batch_norm<C: CheckpointStrategy, const N: usize>(
    inputs: [&FloatTensor<Autodiff<Flex, C>>; N],
    stats: &FloatTensor<Autodiff<Flex, C>>,
    epsilon: f64,
    relu: bool,
) -> FloatTensor<Autodiff<Flex, C>> {
    let skip = inputs.get(3).copied();
    let (out, mean, var) = flex_batch_norm(
        inputs[0].primitive(),
        inputs[1].primitive(),
        inputs[2].primitive(),
        stats.primitive(),
        epsilon,
        skip.map(|skip| skip.primitive()),
        relu,
    );
    match NormBackward::<N>
        .prepare::<C>(inputs.map(|input| input.node()))
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = NormState {
                x: prep.checkpoint(inputs[0]),
                gamma: prep.checkpoint(inputs[1]),
                beta: prep.checkpoint(inputs[2]),
                skip: skip.map(|skip| prep.checkpoint(skip)),
                mean,
                var,
                epsilon,
                relu,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// The geometry of `conv` on an input of spatial size `size` when the kernels cover it:
/// dilation 1 and symmetric padding (valid, explicit, or "same" where it comes out symmetric:
/// odd kernels at stride 1).
fn geometry_of(conv: &Conv2d, kernel: [usize; 2], size: [usize; 2]) -> Option<ConvGeometry> {
    if conv.dilation != [1, 1] {
        return None;
    }
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        PaddingConfig2d::Same => {
            let [top, left] =
                [0, 1].map(|axis| same_padding(kernel[axis], conv.stride[axis], size[axis]));
            if top.0 != top.1 || left.0 != left.1 {
                return None;
            }
            [top.0, left.0]
        }
        PaddingConfig2d::Explicit(..) => return None,
    };
    Some(ConvGeometry {
        stride: conv.stride,
        padding,
        groups: conv.groups,
    })
}

/// burn's "same" padding (before, after) of one axis: the output keeps `ceil(size / stride)`
/// positions, and the padding this needs is split with the odd one after.
fn same_padding(kernel: usize, stride: usize, size: usize) -> (usize, usize) {
    let out = size.div_ceil(stride.max(1));
    let total = if out > 0 {
        ((out - 1) * stride + kernel).saturating_sub(size)
    } else {
        0
    };
    (total / 2, total - total / 2)
}

/// See [`crate::runs_on_kernels`].
pub(crate) fn runs_on_kernels(device: &Device) -> bool {
    crate::TrainingOps::global() == crate::TrainingOps::Kernels
        && device.clone().without_autodiff() == Device::flex()
}

/// See [`crate::conv2d`].
pub(crate) fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let fits = {
        let weight = conv.weight.lazy_shape();
        let weight: Option<[usize; 4]> = weight.as_slice().try_into().ok();
        let dims = x.dims();
        weight.and_then(|weight| {
            let geometry = geometry_of(conv, [weight[2], weight[3]], [dims[2], dims[3]])?;
            ConvShape::new(dims, weight, geometry).map(|_| geometry)
        })
    };
    let geometry = match fits {
        Some(geometry) if x.dtype() == burn::tensor::DType::F32 && runs_on_kernels(&x.device()) => {
            geometry
        }
        _ => return conv.forward(x),
    };
    let weight = conv.weight.val();
    let out_channels = weight.dims()[0];
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::<1>::zeros([out_channels], &weight.device()),
    };
    Tensor::from_dispatch(<Dispatch as TrainKernels>::conv2d_fast(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        geometry,
    ))
}

/// Whether `bn` on `x` runs on the kernels: training mode (an autodiff device, a layer that
/// is not frozen), `f32` on flex, and [`TrainingOps::Kernels`](crate::TrainingOps).
fn norm_on_kernels<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    let device = x.device();
    device.is_autodiff()
        && bn.training.is_enabled()
        && D >= 2
        && x.dtype() == burn::tensor::DType::F32
        && runs_on_kernels(&device)
}

/// The batch statistics of `x` (`[2, C]`: mean, biased variance), with `bn`'s running
/// statistics updated from them as burn's `BatchNorm` does.
fn batch_stats_updating<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> Tensor<2> {
    let device = x.device();
    let channels = x.dims()[1];
    let stats: Tensor<2> = Tensor::from_dispatch(<Dispatch as TrainKernels>::batch_stats(
        x.clone().detach().into_dispatch(),
    ));
    let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let var = stats.clone().slice([1..2, 0..channels]).reshape([channels]);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - bn.momentum)
        .add(mean.mul_scalar(bn.momentum));
    let running_var = running_var
        .mul_scalar(1.0 - bn.momentum)
        .add(var.mul_scalar(bn.momentum));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    stats
}

/// See [`crate::batch_norm`].
pub(crate) fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if !norm_on_kernels(bn, &x) {
        return bn.forward(x);
    }
    let stats = batch_stats_updating(bn, &x);
    Tensor::from_dispatch(<Dispatch as TrainKernels>::batch_norm_train_fast(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        stats.into_dispatch(),
        bn.epsilon,
        false,
    ))
}

/// See [`crate::batch_norm_act`].
pub(crate) fn batch_norm_act(
    bn: &BatchNorm,
    x: Tensor<4>,
    skip: Option<Tensor<4>>,
    activation: Activation,
) -> Tensor<4> {
    let skip_fits = skip
        .as_ref()
        .is_none_or(|s| s.dims() == x.dims() && s.dtype() == x.dtype() && s.device() == x.device());
    if !(skip_fits && norm_on_kernels(bn, &x)) {
        let y = bn.forward(x);
        let y = match skip {
            Some(skip) => y + skip,
            None => y,
        };
        return match activation {
            Activation::None => y,
            Activation::Relu => burn::tensor::activation::relu(y),
        };
    }
    let stats = batch_stats_updating(bn, &x);
    let relu = activation == Activation::Relu;
    let (x, gamma, beta) = (
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
    );
    Tensor::from_dispatch(match skip {
        None => <Dispatch as TrainKernels>::batch_norm_train_fast(
            x,
            gamma,
            beta,
            stats.into_dispatch(),
            bn.epsilon,
            relu,
        ),
        Some(skip) => <Dispatch as TrainKernels>::batch_norm_add_train_fast(
            x,
            gamma,
            beta,
            stats.into_dispatch(),
            skip.into_dispatch(),
            bn.epsilon,
            relu,
        ),
    })
}
