//! Actor and critic MLPs (AMC's architecture) with DDPG's weight initialisation.

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use rand::{Rng, RngExt};

/// Bound of the uniform initialisation of the output layers (DDPG paper, AMC): keeps the first
/// actions near 0.5 and the first Q values near 0.
const OUTPUT_INIT_BOUND: f32 = 3e-3;

/// Policy network `μ(s)`: ReLU hidden layers, one sigmoid output in `[0, 1]`.
#[derive(Module, Debug)]
pub(crate) struct Actor {
    hidden: Vec<Linear>,
    norms: Vec<LayerNorm>,
    out: Linear,
}

/// Action-value network `Q(s, a)`: as in AMC, state and action enter the first hidden layer
/// through two linear maps whose outputs are summed.
#[derive(Module, Debug)]
pub(crate) struct Critic {
    state_in: Linear,
    action_in: Linear,
    hidden: Vec<Linear>,
    norms: Vec<LayerNorm>,
    out: Linear,
}

/// A linear layer `d_in → d_out` with weights and bias uniform in `[-bound, bound]`, drawn from
/// our own RNG so that the initialisation is reproducible whatever the backend's global seed.
fn uniform_linear<R: Rng + ?Sized>(
    d_in: usize,
    d_out: usize,
    bound: f32,
    bias: bool,
    rng: &mut R,
    device: &Device,
) -> Linear {
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..=bound)).collect() };
    let weight = Param::from_data(TensorData::new(draw(d_in * d_out), [d_in, d_out]), device);
    let bias = bias.then(|| Param::from_data(TensorData::new(draw(d_out), [d_out]), device));
    Linear { weight, bias }
}

/// DDPG's hidden-layer bound `1/√fan_in`.
fn fan_in_bound(fan_in: usize) -> f32 {
    1.0 / (fan_in as f32).sqrt()
}

fn hidden_stack<R: Rng + ?Sized>(widths: &[usize], rng: &mut R, device: &Device) -> Vec<Linear> {
    widths
        .windows(2)
        .map(|w| uniform_linear(w[0], w[1], fan_in_bound(w[0]), true, rng, device))
        .collect()
}

fn layer_norms(widths: &[usize], enabled: bool, device: &Device) -> Vec<LayerNorm> {
    if !enabled {
        return Vec::new();
    }
    widths
        .iter()
        .map(|&w| LayerNormConfig::new(w).init(device))
        .collect()
}

/// Applies the optional layer norm of hidden layer `index`, then the ReLU.
fn activate(x: Tensor<2>, norms: &[LayerNorm], index: usize) -> Tensor<2> {
    match norms.get(index) {
        Some(norm) => relu(norm.forward(x)),
        None => relu(x),
    }
}

impl Actor {
    /// A freshly initialised actor for `state_dim` inputs and the given hidden widths (non-empty).
    pub(crate) fn new<R: Rng + ?Sized>(
        state_dim: usize,
        hidden: &[usize],
        layer_norm: bool,
        rng: &mut R,
        device: &Device,
    ) -> Self {
        let first = hidden[0];
        let last = hidden[hidden.len() - 1];
        let mut layers = vec![uniform_linear(
            state_dim,
            first,
            fan_in_bound(state_dim),
            true,
            rng,
            device,
        )];
        layers.extend(hidden_stack(hidden, rng, device));
        let out = uniform_linear(last, 1, OUTPUT_INIT_BOUND, true, rng, device);
        Self {
            hidden: layers,
            norms: layer_norms(hidden, layer_norm, device),
            out,
        }
    }

    /// Actions `[batch, 1]` in `[0, 1]` for states `[batch, state_dim]`.
    pub(crate) fn forward(&self, state: Tensor<2>) -> Tensor<2> {
        let mut x = state;
        for (index, layer) in self.hidden.iter().enumerate() {
            x = activate(layer.forward(x), &self.norms, index);
        }
        sigmoid(self.out.forward(x))
    }
}

impl Critic {
    /// A freshly initialised critic for `state_dim` inputs and the given hidden widths (non-empty).
    pub(crate) fn new<R: Rng + ?Sized>(
        state_dim: usize,
        hidden: &[usize],
        layer_norm: bool,
        rng: &mut R,
        device: &Device,
    ) -> Self {
        let first = hidden[0];
        let last = hidden[hidden.len() - 1];
        // Both input maps feed the same units, so they share the fan-in of the concatenation.
        let bound = fan_in_bound(state_dim + 1);
        let state_in = uniform_linear(state_dim, first, bound, true, rng, device);
        let action_in = uniform_linear(1, first, bound, false, rng, device);
        let hidden_layers = hidden_stack(hidden, rng, device);
        let out = uniform_linear(last, 1, OUTPUT_INIT_BOUND, true, rng, device);
        Self {
            state_in,
            action_in,
            hidden: hidden_layers,
            norms: layer_norms(hidden, layer_norm, device),
            out,
        }
    }

    /// Q values `[batch, 1]` for states `[batch, state_dim]` and actions `[batch, 1]`.
    pub(crate) fn forward(&self, state: Tensor<2>, action: Tensor<2>) -> Tensor<2> {
        let mut x = activate(
            self.state_in.forward(state) + self.action_in.forward(action),
            &self.norms,
            0,
        );
        for (index, layer) in self.hidden.iter().enumerate() {
            x = activate(layer.forward(x), &self.norms, index + 1);
        }
        self.out.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha8Rng;
    use rand::SeedableRng;

    #[test]
    fn shapes_and_ranges() {
        let device = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for layer_norm in [false, true] {
            let actor = Actor::new(5, &[16, 8], layer_norm, &mut rng, &device);
            let critic = Critic::new(5, &[16, 8], layer_norm, &mut rng, &device);
            let states = Tensor::<2>::random(
                [7, 5],
                burn::tensor::Distribution::Normal(0.0, 3.0),
                &device,
            );
            let actions = actor.forward(states.clone());
            assert_eq!(actions.dims(), [7, 1]);
            let a = actions.clone().into_data().try_to_vec::<f32>().unwrap();
            assert!(a.iter().all(|x| (0.0..=1.0).contains(x)));
            // Small output init: the untrained policy sits near 0.5 and Q near 0.
            assert!(a.iter().all(|x| (x - 0.5).abs() < 0.05), "{a:?}");
            let q = critic.forward(states, actions);
            assert_eq!(q.dims(), [7, 1]);
            let q = q.into_data().try_to_vec::<f32>().unwrap();
            assert!(q.iter().all(|x| x.abs() < 0.5), "{q:?}");
        }
    }
}
