//! Fixed-capacity replay buffer (a ring: the newest transition overwrites the oldest).

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// One stored transition `(s, a, r, s', done)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// State the action was taken in.
    pub state: Vec<f32>,
    /// Action the environment applied (after any clipping).
    pub action: f32,
    /// Reward of the transition (AMC: the episode's final reward, before the baseline).
    pub reward: f32,
    /// State after the action.
    pub next_state: Vec<f32>,
    /// Whether `next_state` ended the episode (its value is then not bootstrapped).
    pub done: bool,
}

/// A batch of transitions in row-major, ready-to-upload form.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of transitions.
    pub len: usize,
    /// `len × state_dim` states.
    pub states: Vec<f32>,
    /// `len` actions.
    pub actions: Vec<f32>,
    /// `len` rewards.
    pub rewards: Vec<f32>,
    /// `len × state_dim` next states.
    pub next_states: Vec<f32>,
    /// `len` flags: `0.0` where the transition ended its episode, `1.0` otherwise.
    pub not_done: Vec<f32>,
}

/// Ring buffer of [`Transition`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayBuffer {
    capacity: usize,
    /// Slot the next push writes once the buffer is full.
    next: usize,
    transitions: Vec<Transition>,
}

impl ReplayBuffer {
    /// An empty buffer holding at most `capacity` transitions (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            next: 0,
            transitions: Vec::with_capacity(capacity.min(4096)),
        }
    }

    /// Maximum number of transitions kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of transitions currently stored.
    pub fn len(&self) -> usize {
        self.transitions.len()
    }

    /// Whether nothing is stored yet.
    pub fn is_empty(&self) -> bool {
        self.transitions.is_empty()
    }

    /// Stores `transition`, overwriting the oldest one when full.
    pub fn push(&mut self, transition: Transition) {
        if self.transitions.len() < self.capacity {
            self.transitions.push(transition);
        } else {
            self.transitions[self.next] = transition;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    /// Transitions from oldest to newest.
    pub fn iter(&self) -> impl Iterator<Item = &Transition> {
        let split = if self.transitions.len() < self.capacity {
            0
        } else {
            self.next
        };
        self.transitions[split..]
            .iter()
            .chain(&self.transitions[..split])
    }

    /// `batch_size` transitions drawn uniformly with replacement; `None` when empty.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, batch_size: usize) -> Option<Batch> {
        if self.transitions.is_empty() {
            return None;
        }
        let state_dim = self.transitions[0].state.len();
        let mut batch = Batch {
            len: batch_size,
            states: Vec::with_capacity(batch_size * state_dim),
            actions: Vec::with_capacity(batch_size),
            rewards: Vec::with_capacity(batch_size),
            next_states: Vec::with_capacity(batch_size * state_dim),
            not_done: Vec::with_capacity(batch_size),
        };
        for _ in 0..batch_size {
            let t = &self.transitions[rng.random_range(0..self.transitions.len())];
            batch.states.extend_from_slice(&t.state);
            batch.actions.push(t.action);
            batch.rewards.push(t.reward);
            batch.next_states.extend_from_slice(&t.next_state);
            batch.not_done.push(if t.done { 0.0 } else { 1.0 });
        }
        Some(batch)
    }

    /// Whether the internal layout is consistent (used when loading a checkpoint).
    pub(crate) fn is_consistent(&self, state_dim: usize) -> bool {
        self.capacity > 0
            && self.transitions.len() <= self.capacity
            && self.next < self.capacity
            && (self.transitions.len() == self.capacity
                || self.next == self.transitions.len() % self.capacity)
            && self
                .transitions
                .iter()
                .all(|t| t.state.len() == state_dim && t.next_state.len() == state_dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20::ChaCha8Rng;
    use rand::SeedableRng;

    fn transition(tag: f32) -> Transition {
        Transition {
            state: vec![tag, 0.0],
            action: tag / 10.0,
            reward: tag,
            next_state: vec![tag + 1.0, 0.0],
            done: (tag as usize).is_multiple_of(2),
        }
    }

    #[test]
    fn wraps_around_and_keeps_the_newest() {
        let mut buffer = ReplayBuffer::new(3);
        for tag in 0..5 {
            buffer.push(transition(tag as f32));
        }
        assert_eq!(buffer.len(), 3);
        let rewards: Vec<f32> = buffer.iter().map(|t| t.reward).collect();
        assert_eq!(rewards, vec![2.0, 3.0, 4.0]);
        assert!(buffer.is_consistent(2));
    }

    #[test]
    fn before_wrapping_iterates_in_push_order() {
        let mut buffer = ReplayBuffer::new(4);
        buffer.push(transition(1.0));
        buffer.push(transition(2.0));
        let rewards: Vec<f32> = buffer.iter().map(|t| t.reward).collect();
        assert_eq!(rewards, vec![1.0, 2.0]);
        assert!(buffer.is_consistent(2));
        assert!(!buffer.is_consistent(3));
    }

    #[test]
    fn sample_draws_only_stored_transitions_with_matching_fields() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut buffer = ReplayBuffer::new(3);
        assert!(buffer.sample(&mut rng, 4).is_none());
        for tag in 0..7 {
            buffer.push(transition(tag as f32));
        }
        let batch = buffer.sample(&mut rng, 64).unwrap();
        // Every field holds one entry (states: two values) per draw.
        assert_eq!(batch.states.len(), 128);
        assert_eq!(batch.next_states.len(), 128);
        assert_eq!(
            [
                batch.actions.len(),
                batch.rewards.len(),
                batch.not_done.len()
            ],
            [64; 3]
        );
        // 64 draws reach each of the three stored transitions.
        for tag in [4.0, 5.0, 6.0] {
            assert!(batch.rewards.contains(&tag), "transition {tag} never drawn");
        }
        for i in 0..batch.len {
            let tag = batch.rewards[i];
            assert!(
                (4.0..=6.0).contains(&tag),
                "evicted transition {tag} sampled"
            );
            assert_eq!(batch.states[2 * i], tag);
            assert_eq!(batch.next_states[2 * i], tag + 1.0);
            assert_eq!(batch.actions[i], tag / 10.0);
            assert_eq!(
                batch.not_done[i],
                if (tag as usize).is_multiple_of(2) {
                    0.0
                } else {
                    1.0
                }
            );
        }
        // All three survivors show up in 64 draws.
        for tag in [4.0, 5.0, 6.0] {
            assert!(batch.rewards.contains(&tag));
        }
    }

    #[test]
    fn serde_round_trip_preserves_ring_position() {
        let mut buffer = ReplayBuffer::new(3);
        for tag in 0..4 {
            buffer.push(transition(tag as f32));
        }
        let json = serde_json::to_string(&buffer).unwrap();
        let mut back: ReplayBuffer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, buffer);
        back.push(transition(9.0));
        buffer.push(transition(9.0));
        assert_eq!(back, buffer);
    }
}
