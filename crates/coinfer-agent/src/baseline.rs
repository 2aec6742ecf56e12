//! Moving-average reward baseline (AMC subtracts it from sampled rewards before each update).

use serde::{Deserialize, Serialize};

/// Exponential moving average of the mean reward of the sampled batches.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MovingAverage {
    decay: f32,
    value: Option<f32>,
}

impl MovingAverage {
    /// An empty average; the first observation becomes its value.
    pub fn new(decay: f32) -> Self {
        Self { decay, value: None }
    }

    /// The current value (`None` before the first observation).
    pub fn value(&self) -> Option<f32> {
        self.value
    }

    /// Folds `x` in (`v ← decay·v + (1-decay)·x`) and returns the new value.
    pub fn observe(&mut self, x: f32) -> f32 {
        let value = match self.value {
            None => x,
            Some(v) => self.decay * v + (1.0 - self.decay) * x,
        };
        self.value = Some(value);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_first_value_then_moves_by_one_minus_decay() {
        let mut average = MovingAverage::new(0.9);
        assert_eq!(average.value(), None);
        assert_eq!(average.observe(2.0), 2.0);
        assert!((average.observe(12.0) - 3.0).abs() < 1e-6);
        assert!((average.value().unwrap() - 3.0).abs() < 1e-6);
    }

    #[test]
    fn converges_to_a_constant_input() {
        let mut average = MovingAverage::new(0.95);
        average.observe(-5.0);
        for _ in 0..500 {
            average.observe(1.0);
        }
        assert!((average.value().unwrap() - 1.0).abs() < 1e-4);
    }
}
