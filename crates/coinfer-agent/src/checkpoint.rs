//! Saving an agent to a directory and resuming it bit-exactly.
//!
//! A checkpoint directory holds:
//! - `actor.bpk`, `critic.bpk`, `actor_target.bpk`, `critic_target.bpk`: network weights (burnpack);
//! - `actor_optim.bpk`, `critic_optim.bpk`: Adam states (burnpack);
//! - `replay.json`: the replay ring buffer;
//! - `agent.json`: format tag and version, config, state dimension, episode counter, reward
//!   baseline, best episode and the exact position of the random generator.
//!
//! The exploration σ is a function of the episode counter and is not stored separately.
//! Writing is atomic: everything goes to a temporary sibling directory which then replaces the
//! old checkpoint by two renames (old → `.NAME.old`, temporary → `NAME`). A kill at any moment
//! leaves either the old or the new checkpoint complete; [`Ddpg::resume`] falls back to
//! `.NAME.old` in the one window where `NAME` is missing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::store::ModuleRecord;
use chacha20::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::baseline::MovingAverage;
use crate::config::DdpgConfig;
use crate::ddpg::{BestEpisode, Ddpg};
use crate::error::AgentError;
use crate::replay::ReplayBuffer;

const FORMAT: &str = "coinfer-agent-checkpoint";
const VERSION: u32 = 1;
const AGENT_FILE: &str = "agent.json";
const REPLAY_FILE: &str = "replay.json";
const ACTOR_FILE: &str = "actor.bpk";
const CRITIC_FILE: &str = "critic.bpk";
const ACTOR_TARGET_FILE: &str = "actor_target.bpk";
const CRITIC_TARGET_FILE: &str = "critic_target.bpk";
const ACTOR_OPTIM_FILE: &str = "actor_optim.bpk";
const CRITIC_OPTIM_FILE: &str = "critic_optim.bpk";

/// Everything in `agent.json`.
#[derive(Serialize, Deserialize)]
struct AgentState {
    format: String,
    version: u32,
    config: DdpgConfig,
    state_dim: usize,
    episode: usize,
    baseline: MovingAverage,
    best: Option<BestEpisode>,
    /// ChaCha8 seed, stream and word position (49 bytes), hex.
    rng: String,
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The temporary and the previous-generation sibling of a checkpoint directory.
fn siblings(dir: &Path) -> Result<(PathBuf, PathBuf), AgentError> {
    let name = dir
        .file_name()
        .ok_or_else(|| AgentError::format(dir, "checkpoint path has no directory name"))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = parent.join(format!(".{name}.old"));
    Ok((tmp, old))
}

/// Removes temporary directories a killed save left next to `tmp` (same checkpoint name, any
/// process id), and `tmp` itself.
fn remove_stale_temporaries(tmp: &Path) -> Result<(), AgentError> {
    let (Some(parent), Some(name)) = (tmp.parent(), tmp.file_name()) else {
        return Ok(());
    };
    let name = name.to_string_lossy();
    let prefix = &name[..name.rfind('-').map_or(name.len(), |i| i + 1)];
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(|e| AgentError::io(&path, e))?;
        }
    }
    Ok(())
}

fn sync_file(path: &Path) -> Result<(), AgentError> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| AgentError::io(path, e))
}

/// Flushes a directory entry list; not all platforms can open directories, so failure is ignored.
fn sync_dir(path: &Path) {
    if let Ok(dir) = fs::File::open(path) {
        let _ = dir.sync_all();
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), AgentError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| AgentError::format(path, e))?;
    let mut file = fs::File::create(path).map_err(|e| AgentError::io(path, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| AgentError::io(path, e))
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, AgentError> {
    let bytes = fs::read(path).map_err(|e| AgentError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| AgentError::format(path, e))
}

fn save_module<M: Module>(module: &M, path: &Path) -> Result<(), AgentError> {
    module
        .clone()
        .into_record()
        .save(path)
        .map_err(|e| AgentError::format(path, e))?;
    sync_file(path)
}

fn load_module<M: Module>(module: M, path: &Path) -> Result<M, AgentError> {
    if !path.is_file() {
        return Err(AgentError::io(path, std::io::ErrorKind::NotFound.into()));
    }
    let record = ModuleRecord::load(path).map_err(|e| AgentError::format(path, e))?;
    module
        .try_load_record(record)
        .map_err(|e| AgentError::format(path, e))
}

fn load_optimizer(path: &Path) -> Result<burn::optim::ModuleOptimizer, AgentError> {
    if !path.is_file() {
        return Err(AgentError::io(path, std::io::ErrorKind::NotFound.into()));
    }
    AdamConfig::new()
        .init()
        .load(path)
        .map_err(|e| AgentError::format(path, e))
}

impl Ddpg {
    /// Writes the complete agent state to directory `dir` (created or atomically replaced).
    ///
    /// [`Ddpg::resume`] on that directory gives an agent whose next episodes are exactly those
    /// this agent would have run.
    pub fn save_checkpoint(&self, dir: impl AsRef<Path>) -> Result<(), AgentError> {
        let dir = dir.as_ref();
        let (tmp, old) = siblings(dir)?;
        remove_stale_temporaries(&tmp)?;
        fs::create_dir_all(&tmp).map_err(|e| AgentError::io(&tmp, e))?;

        save_module(&self.actor, &tmp.join(ACTOR_FILE))?;
        save_module(&self.critic, &tmp.join(CRITIC_FILE))?;
        save_module(&self.actor_target, &tmp.join(ACTOR_TARGET_FILE))?;
        save_module(&self.critic_target, &tmp.join(CRITIC_TARGET_FILE))?;
        for (optim, file) in [
            (&self.actor_optim, ACTOR_OPTIM_FILE),
            (&self.critic_optim, CRITIC_OPTIM_FILE),
        ] {
            let path = tmp.join(file);
            optim
                .save(&path)
                .map_err(|e| AgentError::format(&path, e))?;
            sync_file(&path)?;
        }
        write_json(&tmp.join(REPLAY_FILE), &self.replay)?;
        let state = AgentState {
            format: FORMAT.into(),
            version: VERSION,
            config: self.config.clone(),
            state_dim: self.state_dim,
            episode: self.episode,
            baseline: self.baseline,
            best: self.best.clone(),
            rng: to_hex(&self.rng.serialize_state()),
        };
        // Written last: a directory with agent.json is a complete checkpoint.
        write_json(&tmp.join(AGENT_FILE), &state)?;
        sync_dir(&tmp);

        if dir.exists() {
            if old.exists() {
                fs::remove_dir_all(&old).map_err(|e| AgentError::io(&old, e))?;
            }
            fs::rename(dir, &old).map_err(|e| AgentError::io(dir, e))?;
        }
        fs::rename(&tmp, dir).map_err(|e| AgentError::io(dir, e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent);
        }
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|e| AgentError::io(&old, e))?;
        }
        Ok(())
    }

    /// Rebuilds an agent from a directory written by [`Ddpg::save_checkpoint`], its networks on
    /// `device`.
    pub fn resume(dir: impl AsRef<Path>, device: &Device) -> Result<Self, AgentError> {
        let dir = dir.as_ref();
        let (_, old) = siblings(dir)?;
        let dir = if !dir.join(AGENT_FILE).is_file() && old.join(AGENT_FILE).is_file() {
            old
        } else {
            dir.to_path_buf()
        };

        let agent_path = dir.join(AGENT_FILE);
        let state: AgentState = read_json(&agent_path)?;
        if state.format != FORMAT || state.version != VERSION {
            return Err(AgentError::format(
                &agent_path,
                format!(
                    "expected {FORMAT} version {VERSION}, found {} version {}",
                    state.format, state.version
                ),
            ));
        }
        let rng_state: [u8; 49] = from_hex(&state.rng)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| AgentError::format(&agent_path, "rng is not 49 hex-encoded bytes"))?;

        let mut agent = Ddpg::new(state.config, state.state_dim, device)?;
        agent.actor = load_module(agent.actor, &dir.join(ACTOR_FILE))?;
        agent.critic = load_module(agent.critic, &dir.join(CRITIC_FILE))?;
        agent.actor_target = load_module(agent.actor_target, &dir.join(ACTOR_TARGET_FILE))?;
        agent.critic_target = load_module(agent.critic_target, &dir.join(CRITIC_TARGET_FILE))?;
        agent.actor_optim = load_optimizer(&dir.join(ACTOR_OPTIM_FILE))?;
        agent.critic_optim = load_optimizer(&dir.join(CRITIC_OPTIM_FILE))?;

        let replay_path = dir.join(REPLAY_FILE);
        let replay: ReplayBuffer = read_json(&replay_path)?;
        if replay.capacity() != agent.config.replay_capacity
            || !replay.is_consistent(agent.state_dim)
        {
            return Err(AgentError::format(
                &replay_path,
                format!(
                    "replay buffer does not match replay_capacity {} and state_dim {}",
                    agent.config.replay_capacity, agent.state_dim
                ),
            ));
        }
        agent.replay = replay;
        agent.rng = ChaCha8Rng::deserialize_state(&rng_state);
        agent.episode = state.episode;
        agent.baseline = state.baseline;
        agent.best = state.best;
        Ok(agent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(from_hex(&to_hex(&bytes)).unwrap(), bytes);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
        assert!(from_hex("é1").is_none());
    }

    #[test]
    fn siblings_live_next_to_the_directory() {
        let (tmp, old) = siblings(Path::new("runs/ckpt")).unwrap();
        assert_eq!(old, Path::new("runs/.ckpt.old"));
        assert!(tmp.starts_with("runs") && tmp.to_string_lossy().contains(".ckpt.tmp-"));
        let (_, old) = siblings(Path::new("ckpt")).unwrap();
        assert_eq!(old, Path::new("./.ckpt.old"));
    }
}
