//! What an app keeps on disk under its name — its repository, its build cache — removed when
//! the app is destroyed, as a step a crash cannot leave half done.
//!
//! Each of the app's directories is renamed into the trash (`<data>/trash`) in one step, so
//! nothing of it is found under the app's name again however its removal ends; then the
//! trash is emptied. At start ([`Leftovers::sweep`]), the trash is emptied again and every
//! directory whose app is no longer in the store goes there first: a crash between the
//! store's delete and the renames is finished then. A new app is given its name clean
//! ([`Leftovers::trash`] again on creation), whatever an older app of that name left.
//!
//! Removal never follows a symbolic link out of the tree (`std::fs::remove_dir_all` removes
//! links, not their targets): what a build leaves in a cache is the tenant's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use domain::AppName;

/// Where an app's directories are: `<dir>/<app><suffix>` for each place.
#[derive(Debug, Clone, Default)]
pub struct Leftovers {
    trash: PathBuf,
    places: Vec<(PathBuf, String)>,
}

/// Makes trashed names unique within one run of the platform.
static TRASHED: AtomicU64 = AtomicU64::new(0);

impl Leftovers {
    /// Nothing to remove: an app keeps nothing on disk under its name.
    pub fn none() -> Leftovers {
        Leftovers::default()
    }

    /// An app's directories are `<dir>/<app><suffix>` for each of `places`; `trash` is on the
    /// same file system, so a rename into it is one step.
    pub fn new(trash: PathBuf, places: Vec<(PathBuf, String)>) -> Leftovers {
        Leftovers { trash, places }
    }

    /// Moves each of `app`'s directories into the trash. Blocking, but quick: one rename each.
    pub fn trash(&self, app: &str) -> std::io::Result<()> {
        if self.places.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.trash)?;
        for (dir, suffix) in &self.places {
            let name = format!("{app}{suffix}");
            self.trash_entry(&dir.join(&name), &name)?;
        }
        Ok(())
    }

    fn trash_entry(&self, path: &Path, name: &str) -> std::io::Result<()> {
        let unique = format!(
            "{name}.{}.{}",
            time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            TRASHED.fetch_add(1, Ordering::Relaxed)
        );
        match std::fs::rename(path, self.trash.join(unique)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }

    /// Removes everything in the trash. Blocking; errors are logged, and the next start
    /// tries again.
    pub fn empty_trash(&self) {
        let Ok(entries) = std::fs::read_dir(&self.trash) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
            if let Err(err) = removed {
                tracing::warn!(path = %path.display(), error = %err, "cannot empty the trash");
            }
        }
    }

    /// At start: moves into the trash every app directory whose app is not in `apps`, then
    /// empties the trash. Blocking. Entries that are not named like an app's are left alone.
    pub fn sweep(&self, apps: &HashSet<String>) -> std::io::Result<()> {
        if self.places.is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.trash)?;
        for (dir, suffix) in &self.places {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(app) = name.strip_suffix(suffix.as_str()) else {
                    continue;
                };
                if AppName::parse(app).is_ok() && !apps.contains(app) {
                    tracing::info!(path = %entry.path().display(), "removing what a destroyed app left");
                    self.trash_entry(&entry.path(), &name)?;
                }
            }
        }
        self.empty_trash();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for dir in ["repos", "cache", "trash"] {
            if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
                for e in entries.flatten() {
                    found.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        found.sort();
        found
    }

    fn places(root: &Path) -> Leftovers {
        Leftovers::new(
            root.join("trash"),
            vec![
                (root.join("repos"), ".git".to_owned()),
                (root.join("cache"), String::new()),
            ],
        )
    }

    #[test]
    fn a_trashed_app_leaves_nothing_under_its_name() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for dir in [
            "repos/demo.git/objects",
            "cache/demo/layer",
            "repos/other.git",
            "cache/other",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        // A link the tenant left in its cache: removing the cache must not follow it.
        let outside = root.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("cache/demo/layer/link")).unwrap();

        let leftovers = places(root);
        leftovers.trash("demo").unwrap();
        assert_eq!(tree(root).len(), 4, "{:?}", tree(root));
        assert!(!root.join("repos/demo.git").exists() && !root.join("cache/demo").exists());
        leftovers.empty_trash();
        assert_eq!(tree(root), ["cache/other", "repos/other.git"]);
        assert!(outside.join("keep").exists());
        // Nothing to trash is fine.
        leftovers.trash("demo").unwrap();
    }

    #[test]
    fn the_sweep_at_start_removes_what_apps_no_longer_in_the_store_left() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        for dir in [
            "repos/gone.git",
            "repos/kept.git",
            "repos/not-an-app",
            "cache/gone",
            "cache/kept",
            "trash/half-removed.1/x",
        ] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let apps = HashSet::from(["kept".to_owned()]);
        places(root).sweep(&apps).unwrap();
        assert_eq!(
            tree(root),
            ["cache/kept", "repos/kept.git", "repos/not-an-app"]
        );
    }
}
