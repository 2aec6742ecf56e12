//! Small tensor helpers shared by pruning and masking.

use burn::module::Param;
use burn::prelude::*;

use crate::SparsityError;

/// The values of `tensor` as `f32`, row-major.
pub(crate) fn values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, SparsityError> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| SparsityError::Readback(format!("{e:?}")))
}

/// `tensor` restricted to `indices` along `dim`, detached from any autodiff graph.
pub(crate) fn select<const D: usize>(
    tensor: Tensor<D>,
    dim: usize,
    indices: &[usize],
) -> Tensor<D> {
    let device = tensor.device();
    let ints: Vec<i32> = indices.iter().map(|&i| i as i32).collect();
    let index = Tensor::<1, Int>::from_ints(TensorData::new(ints, [indices.len()]), &device);
    tensor.select(dim, index).detach()
}

/// A new parameter (fresh id) holding `param` restricted to `indices` along `dim`.
pub(crate) fn select_param<const D: usize>(
    param: &Param<Tensor<D>>,
    dim: usize,
    indices: &[usize],
) -> Param<Tensor<D>> {
    Param::from_tensor(select(param.val(), dim, indices))
}
