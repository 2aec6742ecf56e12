//! A whole training step on the training kernels against the same step on burn's ops: the
//! loss, every parameter's gradient and the batch norms' running statistics, for every zoo
//! model of 28×28 images (convolutions with strides, projection shortcuts and residual adds,
//! depthwise convolutions, inverted residuals, pooling, linear layers).
//!
//! One test in its own binary: it switches the process-wide [`TrainingOps`].
#![cfg(feature = "flex")]

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::{Distribution, Tolerance};
use coinfer_kernels::TrainingOps;
use coinfer_split::{Network, zoo};

/// Every float parameter's gradient and every running statistic's updated value, in visiting
/// order.
struct Collect<'a> {
    grads: &'a burn::tensor::Gradients,
    out: Vec<(String, TensorData)>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let name = format!("tensor {} {:?}", self.out.len(), tensor.dims());
        let value = match tensor.grad(self.grads) {
            Some(grad) => grad.into_data(),
            // A batch norm's running statistic (no gradient): its updated value.
            None => tensor.into_data(),
        };
        self.out.push((name, value));
    }
}

fn step(net: &Network, x: &Tensor<4>, labels: &Tensor<1, Int>) -> (f32, Vec<(String, TensorData)>) {
    let device = x.device();
    let module = net.module().clone().to_device(&device).train();
    let logits = module.forward(x.clone());
    let loss = CrossEntropyLossConfig::new()
        .init(&device)
        .forward(logits, labels.clone());
    let grads = loss.backward();
    let mut collect = Collect {
        grads: &grads,
        out: Vec::new(),
    };
    module.visit(&mut collect);
    (loss.into_scalar::<f32>(), collect.out)
}

#[test]
fn a_training_step_on_the_kernels_equals_burns() {
    for name in ["resnet-mini", "resnet20-mini", "mobilenetv2-mini"] {
        let device = Device::flex();
        device.seed(7);
        let spec = zoo::by_name(name, 10).expect("zoo model");
        let net = Network::new(spec, &device).expect("network");
        let ad = device.clone().autodiff();
        let [c, h, w] = net.spec().input.dims();
        let x = Tensor::<4>::random([6, c, h, w], Distribution::Normal(0.0, 1.0), &ad);
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 9, 1, 1, 5], [6]), &ad);

        TrainingOps::Burn.set_global();
        let (burn_loss, burn_grads) = step(&net, &x, &labels);
        TrainingOps::Kernels.set_global();
        let (loss, grads) = step(&net, &x, &labels);

        assert!(
            (loss - burn_loss).abs() < 1e-4,
            "{name}: loss {loss} vs burn's {burn_loss}"
        );
        assert_eq!(grads.len(), burn_grads.len(), "{name}: parameter count");
        assert!(
            grads.len() > 10,
            "{name}: only {} parameters visited",
            grads.len()
        );
        for ((path, got), (burn_path, want)) in grads.iter().zip(&burn_grads) {
            assert_eq!(path, burn_path);
            eprintln!("{name}: {path}");
            got.assert_approx_eq::<f32>(want, Tolerance::<f32>::relative(1e-3).set_absolute(1e-4));
        }
    }
}
