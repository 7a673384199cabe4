//! What the builder puts into images, on top of the `oci` crate: where the app lives, the
//! label naming its process types, and layers made of a build's trees walked through
//! [`tenant_fs`](crate::tenant_fs), which follows none of a tenant's links.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use oci::{Dir, EntryKind};

use crate::BuildError;
use crate::tenant_fs::{Kind, Tree};

pub use oci::{ImageSpec, ImageStore, Layer};

/// Where the app lives in its image.
pub const APP_DIR: &str = domain::APP_DIR;

/// The label holding the image's process types (a JSON object of type → command).
pub const PROCESSES_LABEL: &str = "io.slipway.processes";

/// Tars `dir` as `prefix/...`, reproducibly, into `tmp`, then compresses it there, walking
/// it as a tenant's tree. Blocking.
pub fn layer_from_dir(dir: &Path, prefix: &str, tmp: &Path) -> Result<Layer, BuildError> {
    Ok(oci::layer::layer_of(&Tree::open(dir, "")?, prefix, tmp)?)
}

/// A layer of the tree `dir` at `prefix`, made in the store's `tmp/`. Blocking.
pub(crate) fn layer_from_tree(
    store: &ImageStore,
    dir: &Tree,
    prefix: &str,
) -> Result<Layer, BuildError> {
    Ok(store.layer(dir, prefix)?)
}

/// A build's tree, as layers are made of it: every entry reached through the tree's
/// handle, so a link (a symlinked directory on the way included) cannot take the walk
/// outside it.
impl Dir for Tree {
    fn entries(&self) -> std::io::Result<Vec<(OsString, EntryKind)>> {
        let entries = Tree::entries(self).map_err(io)?;
        Ok(entries
            .into_iter()
            .map(|(name, kind)| {
                let kind = match kind {
                    Kind::File => EntryKind::File,
                    Kind::Dir => EntryKind::Dir,
                    Kind::Symlink => EntryKind::Symlink,
                    Kind::Other => EntryKind::Other,
                };
                (name, kind)
            })
            .collect())
    }

    fn metadata(&self, name: &OsStr) -> std::io::Result<std::fs::Metadata> {
        Tree::metadata(self, Path::new(name)).map_err(io)
    }

    fn open_file(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
        Tree::open_file(self, Path::new(name)).map_err(io)
    }

    fn read_link(&self, name: &OsStr) -> std::io::Result<PathBuf> {
        Tree::read_link(self, Path::new(name)).map_err(io)
    }

    fn dir(&self, name: &OsStr) -> std::io::Result<Tree> {
        Tree::dir(self, Path::new(name))
            .map_err(io)?
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// A tenant-path error as an I/O error, its message kept.
fn io(error: BuildError) -> std::io::Error {
    match error {
        BuildError::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_keeps_links_as_links_and_never_leaves_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file"), "inside").unwrap();
        std::fs::write(dir.path().join("secret"), "SECRET").unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel")).unwrap();
        let tree = Tree::open(&root, "").unwrap();
        let tar = oci::layer::reproducible_tar(&tree, APP_DIR).unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            assert!(!text.contains("SECRET"));
            let link = entry.link_name().unwrap().map(|l| l.display().to_string());
            names.push(format!("{} {link:?}", entry.path().unwrap().display()));
        }
        assert_eq!(
            names,
            [
                "workspace None",
                "workspace/rel Some(\"../secret\")",
                "workspace/sub None",
                "workspace/sub/file None",
                format!("workspace/up Some({:?})", dir.path().display().to_string()).as_str(),
            ]
        );
    }
}
