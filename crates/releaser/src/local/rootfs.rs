//! Images unpacked for running. Each layer is unpacked once per digest into
//! `<runtime>/layers/<digest>`, whiteout markers and all; an image's root filesystem is then
//! composed in `<runtime>/images/<digest>` from its layers in order — whiteouts applied,
//! files hard-linked, not copied — once per image, so every release and process that runs
//! the image shares it (a rollback reuses what the release it returns to had), and images
//! that share layers (a run image, unchanged dependencies) share their unpacked files too.
//!
//! Layers may be several gzip members end to end (the builder compresses in parallel).
//! Both steps go to a temporary directory renamed into place when complete, so a crash
//! mid-way leaves nothing that looks finished. One unpack or prune at a time.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use builder::image::ImageStore;
use flate2::read::MultiGzDecoder;

const TMP_PREFIX: &str = ".unpacking-";
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Where layers and images are unpacked.
#[derive(Debug)]
pub(crate) struct Unpacked {
    layers: PathBuf,
    images: PathBuf,
    /// Unpacking and pruning take turns, so a prune never deletes what an unpack uses.
    turn: Mutex<()>,
}

impl Unpacked {
    /// Opens (creating) `<root>/layers` and `<root>/images`, clearing what an interrupted
    /// unpack left.
    pub(crate) fn open(root: &Path) -> io::Result<Unpacked> {
        let unpacked = Unpacked {
            layers: root.join("layers"),
            images: root.join("images"),
            turn: Mutex::new(()),
        };
        for dir in [&unpacked.layers, &unpacked.images] {
            std::fs::create_dir_all(dir)?;
            for entry in std::fs::read_dir(dir)?.flatten() {
                if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                    std::fs::remove_dir_all(entry.path())?;
                }
            }
        }
        Ok(unpacked)
    }

    /// The image's root filesystem, made now unless it was before. Blocking.
    pub(crate) fn get(&self, store: &ImageStore, image: &str) -> io::Result<PathBuf> {
        let _turn = self.turn.lock().expect("never poisoned");
        let dir = in_dir(&self.images, image);
        if dir.is_dir() {
            return Ok(dir);
        }
        let found = store.image(digest_of(image))?;
        let mut layers = Vec::new();
        for layer in &found.layers {
            layers.push(
                self.layer(store, &layer.digest).map_err(|e| {
                    io::Error::new(e.kind(), format!("layer {}: {e}", layer.digest))
                })?,
            );
        }
        let tmp = tempfile_dir(&self.images)?;
        for layer in &layers {
            merge(layer, &tmp)?;
        }
        std::fs::rename(&tmp, &dir)?;
        Ok(dir)
    }

    /// One layer, unpacked unless it was before.
    fn layer(&self, store: &ImageStore, digest: &str) -> io::Result<PathBuf> {
        let dir = in_dir(&self.layers, digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = tempfile_dir(&self.layers)?;
        let blob = std::fs::File::open(store.blob_path(digest))?;
        unpack(MultiGzDecoder::new(io::BufReader::new(blob)), &tmp)?;
        std::fs::rename(&tmp, &dir)?;
        Ok(dir)
    }

    /// Deletes the unpacked images not in `keep`, and the layers none of those use.
    pub(crate) fn prune(&self, store: &ImageStore, keep: &[String]) -> io::Result<()> {
        let _turn = self.turn.lock().expect("never poisoned");
        let kept_images: Vec<PathBuf> = keep.iter().map(|d| in_dir(&self.images, d)).collect();
        let mut kept_layers = Vec::new();
        for image in keep {
            // An image gone from the store keeps nothing of its own.
            if let Ok(found) = store.image(digest_of(image)) {
                kept_layers.extend(found.layers.iter().map(|l| in_dir(&self.layers, &l.digest)));
            }
        }
        for (dir, kept) in [(&self.images, &kept_images), (&self.layers, &kept_layers)] {
            for entry in std::fs::read_dir(dir)?.flatten() {
                let name = entry.file_name();
                if !name.to_string_lossy().starts_with(TMP_PREFIX) && !kept.contains(&entry.path())
                {
                    std::fs::remove_dir_all(entry.path())?;
                }
            }
        }
        Ok(())
    }
}

/// `sha256:…` from `sha256:…` or `host/repo@sha256:…`.
fn digest_of(image: &str) -> &str {
    image.rsplit_once('@').map_or(image, |(_, d)| d)
}

fn in_dir(dir: &Path, image: &str) -> PathBuf {
    dir.join(digest_of(image).replace(':', "-"))
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

/// Unpacks one layer's tar stream into `root` as it is, whiteout markers included.
fn unpack(tar: impl io::Read, root: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        // `unpack_in` refuses paths that leave `root`.
        let inside = entry.unpack_in(root).map_err(|e| {
            // tar's error names the file; its causes say what went wrong.
            let mut text = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                text = format!("{text}: {c}");
                cause = c.source();
            }
            io::Error::new(e.kind(), text)
        })?;
        if !inside {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("layer path {} leaves the image", entry.path()?.display()),
            ));
        }
    }
    Ok(())
}

/// Lays the unpacked layer `src` over `dst`: in each directory, an opaque marker first empties
/// what lower layers put there and each whiteout deletes its name; then every entry is added,
/// replacing what was there — directories merged, files hard-linked, symlinks recreated.
fn merge(src: &Path, dst: &Path) -> io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(src)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.iter().any(|n| n == OPAQUE) {
        for child in std::fs::read_dir(dst)?.flatten() {
            remove(&child.path())?;
        }
    }
    for name in &names {
        if let Some(hidden) = name.strip_prefix(WHITEOUT).filter(|_| name != OPAQUE) {
            remove(&dst.join(hidden))?;
        }
    }
    for (entry, name) in entries.iter().zip(&names) {
        if name.starts_with(WHITEOUT) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(name);
        let meta = std::fs::symlink_metadata(&from)?;
        if meta.is_dir() {
            match std::fs::symlink_metadata(&to) {
                Ok(existing) if existing.is_dir() => {}
                Ok(_) => {
                    remove(&to)?;
                    std::fs::create_dir(&to)?;
                }
                Err(_) => std::fs::create_dir(&to)?,
            }
            merge(&from, &to)?;
            std::fs::set_permissions(&to, meta.permissions())?;
        } else {
            remove(&to)?;
            if meta.file_type().is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            } else {
                std::fs::hard_link(&from, &to)?;
            }
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
    fn later_layers_override_and_whiteouts_delete_and_files_are_shared() {
        let dir = tempfile::tempdir().unwrap();
        let (lower, upper, image) = (
            dir.path().join("lower"),
            dir.path().join("upper"),
            dir.path().join("image"),
        );
        for d in [&lower, &upper, &image] {
            std::fs::create_dir(d).unwrap();
        }
        let lower_tar = tar_of(&[
            ("workspace/", None),
            ("workspace/app.py", Some("v1")),
            ("workspace/old.txt", Some("old")),
            ("workspace/cache/", None),
            ("workspace/cache/a", Some("a")),
            ("workspace/lib/", None),
            ("workspace/lib/dep.py", Some("dep")),
        ]);
        let upper_tar = tar_of(&[
            ("workspace/app.py", Some("v2")),
            ("workspace/.wh.old.txt", Some("")),
            ("workspace/cache/.wh..wh..opq", Some("")),
            ("workspace/cache/b", Some("b")),
        ]);
        unpack(&lower_tar[..], &lower).unwrap();
        unpack(&upper_tar[..], &upper).unwrap();
        merge(&lower, &image).unwrap();
        merge(&upper, &image).unwrap();
        let read = |p: &str| std::fs::read_to_string(image.join(p)).ok();
        assert_eq!(read("workspace/app.py").as_deref(), Some("v2"));
        assert_eq!(read("workspace/old.txt"), None);
        assert_eq!(read("workspace/cache/a"), None);
        assert_eq!(read("workspace/cache/b").as_deref(), Some("b"));
        assert_eq!(read("workspace/lib/dep.py").as_deref(), Some("dep"));
        assert!(!image.join("workspace/.wh.old.txt").exists());
        // The image's files are the layer's, not copies.
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(
            ino(&image.join("workspace/lib/dep.py")),
            ino(&lower.join("workspace/lib/dep.py"))
        );
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
        assert!(unpack(&evil[..], root.path()).is_err());
        assert!(!root.path().parent().unwrap().join(".wh.etc").exists());
    }
}
