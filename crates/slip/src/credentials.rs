//! The saved login: `$XDG_CONFIG_HOME/slipway/credentials.json`, readable by its owner only.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use serde::{Deserialize, Serialize};

/// Who is logged in where. The token is a secret, so Debug leaves it out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    /// The platform's API, without a trailing slash.
    pub(crate) url: String,
    pub(crate) username: String,
    pub(crate) token: String,
}

impl std::fmt::Debug for Saved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saved")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Where the credentials live: `slipway/credentials.json` in the user's config directory.
pub(crate) fn default_path() -> anyhow::Result<PathBuf> {
    let dir = dirs::config_dir()
        .ok_or_else(|| anyhow!("cannot find your config directory: set HOME or XDG_CONFIG_HOME"))?;
    Ok(dir.join("slipway").join("credentials.json"))
}

/// Reads the credentials; `None` when there are none.
pub(crate) fn load(path: &Path) -> anyhow::Result<Option<Saved>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let saved = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{} is damaged; delete it and run `slip login URL`",
            path.display()
        )
    })?;
    Ok(Some(saved))
}

/// Saves the credentials, replacing any. The file is created with mode 0600 (in a 0700
/// directory) and renamed into place, so no other user ever sees the token.
pub(crate) fn save(path: &Path, saved: &Saved) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", path.display()))?;
    create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".credentials.json.{}.tmp", std::process::id()));
    let result = write_private(&tmp, &serde_json::to_vec_pretty(saved)?)
        .and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Deletes the credentials; false when there were none.
pub(crate) fn remove(path: &Path) -> anyhow::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot delete {}", path.display())),
    }
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes a new file that only its owner can read, the mode set as it is created.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn saved(username: &str) -> Saved {
        Saved {
            url: "http://127.0.0.1:7100".to_owned(),
            username: username.to_owned(),
            token: "secret-token".to_owned(),
        }
    }

    #[test]
    fn save_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/slipway/credentials.json");
        assert_eq!(load(&path).unwrap(), None);

        save(&path, &saved("ada")).unwrap();
        assert_eq!(load(&path).unwrap(), Some(saved("ada")));
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);

        save(&path, &saved("bob")).unwrap();
        assert_eq!(load(&path).unwrap(), Some(saved("bob")));
        assert_eq!(mode(&path), 0o600);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["credentials.json"],
            "no temporary file is left behind"
        );

        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
        assert_eq!(load(&path).unwrap(), None);
    }

    #[test]
    fn the_file_holds_url_username_and_token() {
        let text = serde_json::to_string(&saved("ada")).unwrap();
        assert_eq!(
            text,
            r#"{"url":"http://127.0.0.1:7100","username":"ada","token":"secret-token"}"#
        );
    }

    #[test]
    fn debug_output_hides_the_token() {
        let debug = format!("{:?}", saved("ada"));
        assert!(!debug.contains("secret-token"), "{debug}");
    }

    #[test]
    fn a_damaged_file_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.json");
        fs::write(&path, "{").unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is damaged; delete it and run `slip login URL`"),
            "{err}"
        );
    }
}
