//! Images unpacked for running: each image's layers, applied in order (OCI whiteouts
//! honoured), into `<runtime>/images/<digest>`, once per image and shared by every release
//! and process that runs it — a rollback reuses what the release it returns to unpacked.
//!
//! Layers may be several gzip members end to end (the builder compresses in parallel).
//! Unpacking goes to a temporary directory renamed into place when complete, so a crash
//! mid-way leaves nothing that looks finished.

use std::io;
use std::path::{Path, PathBuf};

use builder::image::ImageStore;
use flate2::read::MultiGzDecoder;

const TMP_PREFIX: &str = ".unpacking-";
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Where images are unpacked.
#[derive(Debug)]
pub(crate) struct Unpacked {
    root: PathBuf,
}

impl Unpacked {
    /// Opens (creating) the directory, clearing what an interrupted unpack left.
    pub(crate) fn open(root: PathBuf) -> io::Result<Unpacked> {
        std::fs::create_dir_all(&root)?;
        for entry in std::fs::read_dir(&root)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(Unpacked { root })
    }

    /// Where the image `digest` (or `host/repo@digest`) is unpacked.
    fn dir(&self, image: &str) -> PathBuf {
        let digest = image.rsplit_once('@').map_or(image, |(_, d)| d);
        self.root.join(digest.replace(':', "-"))
    }

    /// The image's root filesystem, unpacked now unless it was before. Blocking.
    pub(crate) fn get(&self, images: &ImageStore, digest: &str) -> io::Result<PathBuf> {
        let dir = self.dir(digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        let image = images.image(digest)?;
        let tmp = tempfile_dir(&self.root)?;
        for layer in &image.layers {
            let blob = std::fs::File::open(images.blob_path(&layer.digest))?;
            apply_layer(MultiGzDecoder::new(io::BufReader::new(blob)), &tmp)
                .map_err(|e| io::Error::new(e.kind(), format!("layer {}: {e}", layer.digest)))?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another unpack of the same image finished first: use that one.
            Err(_) if dir.is_dir() => {
                std::fs::remove_dir_all(&tmp)?;
                Ok(dir)
            }
            Err(err) => Err(err),
        }
    }

    /// Deletes unpacked images that are not in `keep` (digests).
    pub(crate) fn prune(&self, keep: &[String]) -> io::Result<()> {
        let keep: Vec<PathBuf> = keep.iter().map(|d| self.dir(d)).collect();
        for entry in std::fs::read_dir(&self.root)?.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(TMP_PREFIX) && !keep.contains(&entry.path()) {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

fn tempfile_dir(root: &Path) -> io::Result<PathBuf> {
    for attempt in 0..100u32 {
        let dir = root.join(format!("{TMP_PREFIX}{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot make a directory to unpack into"))
}

/// Applies one layer's tar stream to `root`: whiteouts delete what lower layers put there,
/// everything else is written over it.
fn apply_layer(tar: impl io::Read, root: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == OPAQUE {
            // Everything lower layers put in this directory goes.
            let dir = safe_join(root, path.parent().unwrap_or(Path::new("")))?;
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    remove(&child.path())?;
                }
            }
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            let target = safe_join(root, &path.with_file_name(hidden))?;
            remove(&target)?;
        } else {
            entry.unpack_in(root).map_err(|e| {
                // tar's error names the file; its cause says what went wrong.
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    text = format!("{text}: {c}");
                    cause = c.source();
                }
                io::Error::new(e.kind(), text)
            })?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// `root/relative`, refusing paths that climb out of `root`.
fn safe_join(root: &Path, relative: &Path) -> io::Result<PathBuf> {
    let mut out = root.to_path_buf();
    for part in relative.components() {
        match part {
            std::path::Component::Normal(p) => out.push(p),
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("layer path {} leaves the image", relative.display()),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(text) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(text.len() as u64);
                    header.set_mode(0o644);
                    builder
                        .append_data(&mut header, path, text.as_bytes())
                        .unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn later_layers_override_and_whiteouts_delete() {
        let root = tempfile::tempdir().unwrap();
        let lower = tar_of(&[
            ("workspace/", None),
            ("workspace/app.py", Some("v1")),
            ("workspace/old.txt", Some("old")),
            ("workspace/cache/", None),
            ("workspace/cache/a", Some("a")),
        ]);
        let upper = tar_of(&[
            ("workspace/app.py", Some("v2")),
            ("workspace/.wh.old.txt", Some("")),
            ("workspace/cache/.wh..wh..opq", Some("")),
            ("workspace/cache/b", Some("b")),
        ]);
        apply_layer(&lower[..], root.path()).unwrap();
        apply_layer(&upper[..], root.path()).unwrap();
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).ok();
        assert_eq!(read("workspace/app.py").as_deref(), Some("v2"));
        assert_eq!(read("workspace/old.txt"), None);
        assert_eq!(read("workspace/cache/a"), None);
        assert_eq!(read("workspace/cache/b").as_deref(), Some("b"));
    }

    #[test]
    fn whiteouts_cannot_climb_out() {
        let root = tempfile::tempdir().unwrap();
        // tar::Builder refuses such a path, so the header is written by hand.
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..10].copy_from_slice(b"../.wh.etc");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_cksum();
        let mut evil = header.as_bytes().to_vec();
        evil.extend_from_slice(&[0; 1024]);
        assert!(apply_layer(&evil[..], root.path()).is_err());
    }
}
