//! A secret kept in a file (a Kubernetes Secret, a systemd credential, a Vault agent's
//! output), read again when the file changes, so that a rotated token or password is used
//! without a restart.
//!
//! The file is looked at (its size, modification time and inode; a Kubernetes Secret volume
//! swaps a symlink, which changes all three) at most every [`CHECK_EVERY`] while requests go
//! out, and at once when the API has just refused the secret in use. A file that cannot be read
//! or is empty during a rotation keeps the last secret, and the problem is logged once, with
//! the path and never the content.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::lock;

/// How often the file is looked at while requests go out.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// A secret from a file, with the file's state when it was read.
pub struct SecretFile {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    secret: SecretString,
    stamp: Option<Stamp>,
    /// Counts the secrets read: a user of the secret compares it with the one it applied.
    version: u64,
    checked: Instant,
    /// The last re-read failed (logged once until one succeeds).
    failing: bool,
}

/// What tells a changed file from the same one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// A secret file's content, trimmed of surrounding white space; the error names the file.
pub fn read(path: &Path) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(SecretString::from(text.to_owned()))
}

impl SecretFile {
    /// Reads `path` now; the error names the file.
    pub fn open(path: &Path) -> Result<SecretFile, String> {
        let stamp = stamp(path);
        let secret = read(path)?;
        Ok(SecretFile {
            path: path.to_owned(),
            state: Mutex::new(State {
                secret,
                stamp,
                version: 1,
                checked: Instant::now(),
                failing: false,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The secret read last.
    pub fn secret(&self) -> SecretString {
        lock(&self.state).secret.clone()
    }

    /// The version of the secret read last (it grows with each new secret).
    pub fn version(&self) -> u64 {
        lock(&self.state).version
    }

    /// Reads the file again if it changed, looking at it only when [`CHECK_EVERY`] has passed
    /// since the last look, or at once when `now`. The version of the secret afterwards.
    pub fn refresh(&self, now: bool) -> u64 {
        let mut state = lock(&self.state);
        if !now && state.checked.elapsed() < CHECK_EVERY {
            return state.version;
        }
        state.checked = Instant::now();
        let current = stamp(&self.path);
        if current.is_some() && current == state.stamp && !state.failing {
            return state.version;
        }
        match read(&self.path) {
            Ok(secret) => {
                state.stamp = current;
                state.failing = false;
                if secret.expose_secret() != state.secret.expose_secret() {
                    state.secret = secret;
                    state.version += 1;
                    tracing::info!(file = %self.path.display(), "secret file changed: the new secret is used");
                }
            }
            Err(problem) => {
                if !state.failing {
                    tracing::warn!(
                        file = %self.path.display(),
                        "the secret file cannot be read again, the last secret stays: {problem}"
                    );
                }
                state.failing = true;
            }
        }
        state.version
    }
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_secret() {
        let dir = std::env::temp_dir().join(format!("secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "first\n").unwrap();
        let file = SecretFile::open(&path).unwrap();
        assert_eq!(file.secret().expose_secret(), "first");
        assert_eq!(file.refresh(true), 1, "unchanged");

        std::fs::write(&path, "second-and-longer").unwrap();
        // Not looked at before CHECK_EVERY, unless asked to.
        assert_eq!(file.refresh(false), 1);
        assert_eq!(file.refresh(true), 2);
        assert_eq!(file.secret().expose_secret(), "second-and-longer");

        // Mid-rotation: missing, then empty. The last secret stays.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.refresh(true), 2);
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(file.refresh(true), 2);
        assert_eq!(file.secret().expose_secret(), "second-and-longer");
        std::fs::write(&path, "third").unwrap();
        assert_eq!(file.refresh(true), 3);
        assert!(!format!("{file:?}").contains("third"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
