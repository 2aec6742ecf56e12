//! Target networks: Polyak ("soft") updates and parameter snapshots.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

/// Collects every float parameter, flattened, without autodiff, in traversal order.
#[derive(Default)]
struct Flatten {
    tensors: Vec<Tensor<1>>,
}

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val().inner();
        let len = value.shape().num_elements();
        self.tensors.push(value.reshape([len]));
    }
}

/// Blends each parameter with the online parameter at the same traversal position.
struct Blend {
    online: std::vec::IntoIter<Tensor<1>>,
    tau: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(online) = self.online.next() else {
            return param;
        };
        let tau = self.tau;
        param.map(|target| {
            let shape = target.shape();
            let online = online.to_device(&target.device()).reshape(shape);
            target.mul_scalar(1.0 - tau) + online.mul_scalar(tau)
        })
    }
}

/// `target ← τ·online + (1-τ)·target`, parameter by parameter.
///
/// `target` and `online` must have the same structure (they are built from the same config);
/// parameters are matched by traversal order, which the derived `Module` keeps stable.
pub(crate) fn soft_update<M: Module>(target: M, online: &M, tau: f64) -> M {
    let mut flatten = Flatten::default();
    online.visit(&mut flatten);
    target.map(&mut Blend {
        online: flatten.tensors.into_iter(),
        tau,
    })
}

/// Every float parameter of `module`, flattened and concatenated.
#[cfg(test)]
pub(crate) fn flat_params<M: Module>(module: &M) -> Vec<f32> {
    let mut flatten = Flatten::default();
    module.visit(&mut flatten);
    flatten
        .tensors
        .into_iter()
        .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Actor;
    use chacha20::ChaCha8Rng;
    use rand::SeedableRng;

    #[test]
    fn soft_update_moves_target_by_tau_towards_online() {
        let device = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let online = Actor::new(3, &[4, 4], true, &mut rng, &device);
        let target = Actor::new(3, &[4, 4], true, &mut rng, &device);
        let (o, t) = (flat_params(&online), flat_params(&target));
        assert_eq!(o.len(), t.len());
        assert_ne!(o, t);

        let blended = flat_params(&soft_update(target, &online, 0.25));
        for ((b, o), t) in blended.iter().zip(&o).zip(&t) {
            assert!((b - (0.25 * o + 0.75 * t)).abs() < 1e-6);
        }
    }

    #[test]
    fn tau_one_copies_online_and_works_across_autodiff() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let online = Actor::new(2, &[3], false, &mut rng, &ad);
        let target = Actor::new(2, &[3], false, &mut rng, &device);
        let copied = soft_update(target, &online, 1.0);
        assert_eq!(flat_params(&copied), flat_params(&online));
    }

    #[test]
    fn same_seed_gives_same_weights_and_different_seed_different() {
        let device = Device::flex();
        let build = |seed| {
            Actor::new(
                3,
                &[8, 8],
                true,
                &mut ChaCha8Rng::seed_from_u64(seed),
                &device,
            )
        };
        assert_eq!(flat_params(&build(1)), flat_params(&build(1)));
        assert_ne!(flat_params(&build(1)), flat_params(&build(2)));
    }
}
