//! [`RunFolder`]: where a run writes its results, staged beside the published folder and
//! renamed over it only when the run has finished.
//!
//! A run named `default` under `results/` works in `results/.default.partial/` and becomes
//! `results/default/` at the end, so a run that fails leaves an earlier run of the same name
//! as it was; an interrupted search leaves its checkpoint in the staging folder for a resume.

use std::path::{Path, PathBuf};

use crate::AutomlError;

/// The published folder of a run and its staging sibling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    published: PathBuf,
    staging: PathBuf,
}

impl RunFolder {
    /// The run whose results are published at `published` (e.g. `results/default`).
    pub fn new(published: impl Into<PathBuf>) -> RunFolder {
        let published = published.into();
        let staging = sibling(&published, "partial");
        RunFolder { published, staging }
    }

    /// Where the finished run lives.
    pub fn published(&self) -> &Path {
        &self.published
    }

    /// Where the run writes while it runs.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// The agent's checkpoint folder, inside staging.
    pub fn checkpoint(&self) -> PathBuf {
        self.staging.join("checkpoint")
    }

    /// Prepares the staging folder: a fresh one, or with `resume` the one an interrupted
    /// search left (its checkpoint), else a copy of the finished run's checkpoint.
    pub fn stage(&self, resume: bool) -> Result<(), AutomlError> {
        if !resume && self.staging.exists() {
            std::fs::remove_dir_all(&self.staging).map_err(AutomlError::io(&self.staging))?;
        }
        let finished = self.published.join("checkpoint");
        if resume && !self.checkpoint().exists() && finished.join("agent").exists() {
            copy_dir(&finished, &self.checkpoint())?;
        }
        std::fs::create_dir_all(&self.staging).map_err(AutomlError::io(&self.staging))
    }

    /// Replaces the published folder with the finished staging one.
    pub fn publish(&self) -> Result<(), AutomlError> {
        let old = sibling(&self.published, "old");
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(AutomlError::io(&old))?;
        }
        if self.published.exists() {
            std::fs::rename(&self.published, &old).map_err(AutomlError::io(&self.published))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.published) {
            // Put the earlier run back.
            let _ = std::fs::rename(&old, &self.published);
            return Err(AutomlError::io(&self.staging)(e));
        }
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Writes `text` to `name` inside staging.
    pub fn write(&self, name: &str, text: &str) -> Result<(), AutomlError> {
        let path = self.staging.join(name);
        std::fs::write(&path, text).map_err(AutomlError::io(path))
    }
}

/// `<parent>/.<name>.<what>`: a sibling of the folder `out`.
fn sibling(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.{what}"))
}

/// Copies a folder tree (a checkpoint: a few small files).
fn copy_dir(from: &Path, to: &Path) -> Result<(), AutomlError> {
    std::fs::create_dir_all(to).map_err(AutomlError::io(to))?;
    for entry in std::fs::read_dir(from).map_err(AutomlError::io(from))? {
        let entry = entry.map_err(AutomlError::io(from))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(AutomlError::io(entry.path()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_replaced_only_when_it_is_published() {
        let results = std::env::temp_dir().join(format!("coinfer-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&results);
        let out = results.join("run");
        std::fs::create_dir_all(out.join("checkpoint").join("agent")).unwrap();
        std::fs::write(out.join("report.md"), "earlier").unwrap();
        std::fs::write(out.join("checkpoint").join("agent").join("a"), "state").unwrap();
        let folder = RunFolder::new(&out);
        // A new run stages beside the published one; until it is published that one stays.
        folder.stage(false).unwrap();
        assert_eq!(folder.staging(), results.join(".run.partial"));
        folder.write("report.md", "new").unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("report.md")).unwrap(),
            "earlier"
        );
        // A fresh run discards what an earlier one left in staging.
        folder.stage(false).unwrap();
        assert!(!folder.staging().join("report.md").exists());
        // A resume starts from the finished run's checkpoint.
        folder.stage(true).unwrap();
        let copied = folder.checkpoint().join("agent").join("a");
        assert_eq!(std::fs::read_to_string(copied).unwrap(), "state");
        folder.write("report.md", "new").unwrap();
        folder.publish().unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("report.md")).unwrap(),
            "new"
        );
        assert!(!folder.staging().exists() && !sibling(&out, "old").exists());
        let _ = std::fs::remove_dir_all(&results);
    }
}
