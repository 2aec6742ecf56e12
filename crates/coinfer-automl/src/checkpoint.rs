//! Checkpoint I/O of a DDPG run: the agent's state and every finished episode, saved
//! atomically so an interrupted search resumes without losing or re-running an episode.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use coinfer_agent::Ddpg;

use crate::AutomlError;
use crate::env::EpisodeRecord;
use crate::observer::Observer;
use crate::output::RunFolder;

pub(crate) const RECORDS_FILE: &str = "episodes.json";
pub(crate) const AGENT_DIR: &str = "agent";

pub(crate) fn save_records(dir: &Path, records: &[EpisodeRecord]) -> Result<(), AutomlError> {
    std::fs::create_dir_all(dir).map_err(AutomlError::io(dir))?;
    let path = dir.join(RECORDS_FILE);
    let tmp = path.with_extension("partial");
    let json = serde_json::to_vec(records).map_err(|e| AutomlError::Json {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&tmp, json).map_err(AutomlError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(AutomlError::io(&path))
}

pub(crate) fn resume(
    dir: &Path,
    device: &Device,
) -> Result<(Ddpg, Vec<EpisodeRecord>), AutomlError> {
    let agent = Ddpg::resume(dir.join(AGENT_DIR), device)?;
    let path: PathBuf = dir.join(RECORDS_FILE);
    let records = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AutomlError::Json {
            path: path.clone(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(AutomlError::Io { path, source }),
    };
    Ok((agent, records))
}

/// What a DDPG checkpoint holds, read without starting a search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointSummary {
    /// Episodes the checkpointed agent finished (a resumed search starts after them).
    pub episodes_done: usize,
    /// The best reward of those episodes (`None` before the first).
    pub best_reward: Option<f32>,
}

/// Reads and checks the DDPG checkpoint in `dir` — the folder
/// [`SearchSession::run_ddpg`](crate::SearchSession::run_ddpg) saves to and resumes from —
/// so a caller can report a corrupt checkpoint before the expensive steps of a search, and
/// show where a resumed search starts.
///
/// # Errors
/// [`AutomlError`] naming the file that cannot be read or parsed (agent state, networks,
/// replay buffer, episode records).
pub fn inspect_checkpoint(dir: &Path, device: &Device) -> Result<CheckpointSummary, AutomlError> {
    let (agent, mut records) = resume(dir, device)?;
    let episodes_done = agent.episodes_done();
    records.truncate(episodes_done);
    Ok(CheckpointSummary {
        episodes_done,
        best_reward: records.iter().map(|r| r.reward).reduce(f32::max),
    })
}

/// With `resume`: reads and checks the checkpoint in `folder`'s staging folder (a corrupt one
/// is an error naming its file), or notes that there is none and the search starts afresh.
pub(crate) fn resumed_from(
    folder: &RunFolder,
    resume: bool,
    device: &Device,
    observer: &dyn Observer,
) -> Result<Option<CheckpointSummary>, AutomlError> {
    if !resume {
        return Ok(None);
    }
    let checkpoint = folder.checkpoint();
    if !checkpoint.join(AGENT_DIR).exists() {
        observer.note(&format!(
            "resume: no checkpoint in {} (nor an interrupted search in {}), the search starts \
             from episode 0",
            folder.published().join("checkpoint").display(),
            checkpoint.display()
        ));
        return Ok(None);
    }
    let summary =
        inspect_checkpoint(&checkpoint, device).map_err(|e| AutomlError::InvalidConfig {
            field: "resume",
            reason: format!("the checkpoint cannot be used: {e}"),
        })?;
    observer.note(&format!(
        "resume: the checkpoint holds {} episodes, the search goes on from there",
        summary.episodes_done
    ));
    Ok(Some(summary))
}
