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
//!
//! A layer is hostile input. Every entry's path is parsed into plain names (no `..`, no
//! absolute path, no more than [`MAX_DEPTH`] deep), and every file operation is made on a
//! directory handle with one such name (`openat`, `mkdirat`, `linkat`, … with `O_NOFOLLOW`),
//! never on a joined path: a symbolic link in a layer is written, never followed, and an entry
//! beneath one is refused. Hard links go only to earlier files of the same layer; whiteouts
//! hide only one plain name (`.wh..`, `.wh...` and `.wh.` alone are refused) and the only
//! opaque marker is `.wh..wh..opq`. Devices and FIFOs are skipped, setuid and setgid bits
//! dropped. A bad layer fails the deploy with the entry and the reason, and its temporary
//! directory is removed.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use domain::{Digest, ImageRef};
use flate2::read::MultiGzDecoder;
use oci::ImageStore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

const TMP_PREFIX: &str = ".unpacking-";
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// The most names a layer entry's path may have; deeper is refused.
const MAX_DEPTH: usize = 128;
/// The mode bits kept: permissions and the sticky bit, never setuid or setgid.
const MODE_BITS: u32 = 0o1777;

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

    /// The root filesystem of the image with manifest `image`, made now unless it was
    /// before. Blocking.
    pub(crate) fn get(&self, store: &ImageStore, image: &Digest) -> io::Result<PathBuf> {
        let _turn = self.turn.lock().expect("never poisoned");
        let dir = in_dir(&self.images, image);
        if dir.is_dir() {
            return Ok(dir);
        }
        let found = store.image(image)?;
        let mut layers = Vec::new();
        for layer in &found.layers {
            layers.push(
                self.layer(store, &layer.digest).map_err(|e| {
                    io::Error::new(e.kind(), format!("layer {}: {e}", layer.digest))
                })?,
            );
        }
        in_tmp_dir(&self.images, &dir, |tmp| {
            layers.iter().try_for_each(|layer| merge(layer, tmp))
        })?;
        Ok(dir)
    }

    /// One layer, unpacked unless it was before.
    fn layer(&self, store: &ImageStore, digest: &Digest) -> io::Result<PathBuf> {
        let dir = in_dir(&self.layers, digest);
        if dir.is_dir() {
            return Ok(dir);
        }
        let blob = store.open_blob(digest)?;
        in_tmp_dir(&self.layers, &dir, |tmp| {
            unpack(MultiGzDecoder::new(io::BufReader::new(blob)), tmp)
        })?;
        Ok(dir)
    }

    /// Deletes the unpacked images not in `keep` (images as releases name them), and the
    /// layers none of those use.
    pub(crate) fn prune(&self, store: &ImageStore, keep: &[ImageRef]) -> io::Result<()> {
        let _turn = self.turn.lock().expect("never poisoned");
        // A reference without a digest names no image of the store, and keeps nothing.
        let keep: Vec<Digest> = keep
            .iter()
            .filter_map(|image| image.digest().cloned())
            .collect();
        let kept_images: Vec<PathBuf> = keep.iter().map(|d| in_dir(&self.images, d)).collect();
        let mut kept_layers = Vec::new();
        for image in &keep {
            // An image gone from the store keeps nothing of its own.
            if let Ok(found) = store.image(image) {
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

/// The digest by which the local store has `image` (a release's image: `sha256:…` or
/// `host/repo@sha256:…`).
pub(crate) fn local_digest(image: &ImageRef) -> Result<Digest, String> {
    image.digest().cloned().ok_or_else(|| {
        "the local runtime runs only images in its own store, named by digest; give the image as registry/repository@sha256:…".to_owned()
    })
}

/// `<dir>/sha256-<hex>`: one plain name, since only a parsed digest makes it.
fn in_dir(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(format!("sha256-{}", digest.hex()))
}

/// Makes a temporary directory in `root`, fills it with `fill`, and renames it to `dir`; if
/// `fill` fails, the temporary directory is removed and nothing else was touched.
fn in_tmp_dir(
    root: &Path,
    dir: &Path,
    fill: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tempfile_dir(root)?;
    let made = fill(&tmp).and_then(|()| std::fs::rename(&tmp, dir));
    if made.is_err() {
        // std's remove_dir_all follows no symbolic link of what it removes.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    made
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

/// A layer entry's path: plain names (no `.`, `..`, `/` or NUL), at most [`MAX_DEPTH`],
/// `.wh.` only in the last one and only as a valid whiteout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EntryPath(Vec<OsString>);

impl EntryPath {
    fn parse(raw: &[u8]) -> Result<EntryPath, String> {
        if raw.starts_with(b"/") {
            return Err("is an absolute path".to_owned());
        }
        if raw.contains(&0) {
            return Err("has a NUL byte in its name".to_owned());
        }
        let mut names = Vec::new();
        for name in raw.split(|b| *b == b'/') {
            match name {
                b"" | b"." => {}
                b".." => return Err("climbs out with ..".to_owned()),
                _ => names.push(OsStr::from_bytes(name).to_owned()),
            }
        }
        if names.len() > MAX_DEPTH {
            return Err(format!("is more than {MAX_DEPTH} directories deep"));
        }
        for (i, name) in names.iter().enumerate() {
            if whiteout(name)?.is_some() && i + 1 != names.len() {
                return Err("has a whiteout marker as a directory".to_owned());
            }
        }
        Ok(EntryPath(names))
    }

    /// The directories above the entry and its own name; `None` for the layer's root.
    fn split_last(&self) -> Option<(&OsStr, &[OsString])> {
        self.0
            .split_last()
            .map(|(name, parents)| (name.as_os_str(), parents))
    }
}

/// What a `.wh.` name does to the layers below.
#[derive(Debug, PartialEq, Eq)]
enum Whiteout<'a> {
    /// `.wh..wh..opq`: the directory hides everything below it.
    Opaque,
    /// `.wh.NAME`: hides `NAME` in the same directory.
    Hide(&'a OsStr),
}

/// `None` for an ordinary name; a whiteout for `.wh.NAME` with a plain `NAME` or the opaque
/// marker; an error for any other name starting `.wh.`.
fn whiteout(name: &OsStr) -> Result<Option<Whiteout<'_>>, String> {
    let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT.as_bytes()) else {
        return Ok(None);
    };
    if name == OPAQUE {
        return Ok(Some(Whiteout::Opaque));
    }
    if matches!(hidden, b"" | b"." | b"..") || hidden.starts_with(WHITEOUT.as_bytes()) {
        return Err(format!(
            "is a whiteout of no plain name ({:?})",
            name.to_string_lossy()
        ));
    }
    Ok(Some(Whiteout::Hide(OsStr::from_bytes(hidden))))
}

fn invalid(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text)
}

/// Opens the directory `name` of `dir`, never through a symbolic link.
fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens one of the runtime's own directories.
fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// What `name` in `dir` is, without following it; `None` if nothing is there.
fn kind_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(FileType::from_raw_mode(stat.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The names in `dir`, sorted.
fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Removes `name` from `dir`, a directory with all it holds; nothing if it is not there.
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let inner = open_dir(dir, name)?;
            for child in list(inner.as_fd())? {
                remove_at(inner.as_fd(), &child)?;
            }
            Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
        }
        Some(_) => Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?),
    }
}

/// Opens the directory `names` beneath `root`, making missing ones (0755) when `create`.
/// Only directories are passed through: a symbolic link or a file on the way is refused.
fn walk(root: BorrowedFd<'_>, names: &[OsString], create: bool) -> Result<OwnedFd, String> {
    let fail = |e: io::Error| format!("cannot be made: {e}");
    let mut dir = open_dir(root, OsStr::new(".")).map_err(fail)?;
    for name in names {
        match kind_at(dir.as_fd(), name).map_err(fail)? {
            Some(FileType::Directory) => {}
            None if create => {
                rustix::fs::mkdirat(dir.as_fd(), name.as_os_str(), Mode::from_raw_mode(0o755))
                    .map_err(|e| fail(e.into()))?;
            }
            None => {
                return Err(format!(
                    "lies beneath {:?}, which is not there",
                    name.to_string_lossy()
                ));
            }
            Some(FileType::Symlink) => {
                return Err(format!(
                    "lies beneath the symbolic link {:?}",
                    name.to_string_lossy()
                ));
            }
            Some(_) => {
                return Err(format!(
                    "lies beneath {:?}, which is not a directory",
                    name.to_string_lossy()
                ));
            }
        }
        dir = open_dir(dir.as_fd(), name).map_err(fail)?;
    }
    Ok(dir)
}

/// Unpacks one layer's tar stream into `root` as it is, whiteout markers included, each
/// entry checked first (see the module's documentation).
fn unpack(tar: impl io::Read, root: &Path) -> io::Result<()> {
    let root = open_root(root)?;
    let root = root.as_fd();
    let mut archive = tar::Archive::new(tar);
    // The layer's regular files so far: what a hard link may point to.
    let mut files: HashSet<EntryPath> = HashSet::new();
    // Directory modes, set at the end so a read-only directory still takes its entries.
    let mut dirs: Vec<(EntryPath, u32)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path_bytes().into_owned();
        let bad = |reason: String| {
            invalid(format!(
                "layer entry {:?} {reason}",
                String::from_utf8_lossy(&raw)
            ))
        };
        let path = EntryPath::parse(&raw).map_err(bad)?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header
            .mode()
            .map_err(|e| bad(format!("has no valid mode: {e}")))?
            & MODE_BITS;
        let mtime = header.mtime().unwrap_or(0);
        let Some((name, parents)) = path.split_last() else {
            // The layer's root itself.
            if kind.is_dir() {
                continue;
            }
            return Err(bad("is the layer's root but not a directory".to_owned()));
        };
        if whiteout(name).map_err(bad)?.is_some() && !kind.is_file() {
            return Err(bad("is a whiteout marker but not a plain file".to_owned()));
        }
        let skipped = matches!(
            kind,
            tar::EntryType::Char
                | tar::EntryType::Block
                | tar::EntryType::Fifo
                | tar::EntryType::XGlobalHeader
        );
        if skipped {
            continue;
        }
        let parent = walk(root, parents, true).map_err(bad)?;
        let parent = parent.as_fd();
        let io_bad = |e: io::Error| bad(format!("cannot be unpacked: {e}"));
        match kind {
            tar::EntryType::Directory => {
                if kind_at(parent, name).map_err(io_bad)? != Some(FileType::Directory) {
                    remove_at(parent, name).map_err(io_bad)?;
                    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
                        .map_err(|e| io_bad(e.into()))?;
                }
                files.remove(&path);
                dirs.push((path.clone(), mode));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_at(parent, name).map_err(io_bad)?;
                let fd = rustix::fs::openat(
                    parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_bad(e.into()))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(io_bad)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(|e| io_bad(e.into()))?;
                file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
                    .map_err(io_bad)?;
                files.insert(path.clone());
            }
            tar::EntryType::Symlink => {
                // The target is kept as it is: only the app, inside its sandbox, follows it.
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty() && !t.contains(&0))
                    .ok_or_else(|| bad("is a symbolic link to nothing".to_owned()))?;
                remove_at(parent, name).map_err(io_bad)?;
                rustix::fs::symlinkat(OsStr::from_bytes(&target), parent, name)
                    .map_err(|e| io_bad(e.into()))?;
                files.remove(&path);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("is a hard link to nothing".to_owned()))?;
                let target = EntryPath::parse(&target)
                    .map_err(|reason| bad(format!("is a hard link to a path that {reason}")))?;
                if target == path || !files.contains(&target) {
                    return Err(bad(
                        "is a hard link to no earlier file of its layer".to_owned()
                    ));
                }
                let (target_name, target_parents) = target.split_last().expect("a file has a name");
                let target_dir = walk(root, target_parents, false).map_err(bad)?;
                remove_at(parent, name).map_err(io_bad)?;
                rustix::fs::linkat(
                    target_dir.as_fd(),
                    target_name,
                    parent,
                    name,
                    AtFlags::empty(),
                )
                .map_err(|e| io_bad(e.into()))?;
                files.insert(path.clone());
            }
            other => {
                return Err(bad(format!(
                    "has a type this runtime does not unpack ({other:?})"
                )));
            }
        }
    }
    for (path, mode) in dirs {
        // A directory that a later entry replaced keeps no mode (walk follows no link).
        if let Ok(dir) = walk(root, &path.0, false) {
            rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
        }
    }
    Ok(())
}

/// Lays the unpacked layer `src` over `dst`: in each directory, an opaque marker first empties
/// what lower layers put there and each whiteout deletes its name; then every entry is added,
/// replacing what was there — directories merged, files hard-linked, symlinks recreated.
/// Every step is on directory handles and single names, so nothing outside `dst` is touched.
fn merge(src: &Path, dst: &Path) -> io::Result<()> {
    let src = open_root(src)?;
    let dst = open_root(dst)?;
    merge_dirs(src.as_fd(), dst.as_fd(), 0)
}

fn merge_dirs(src: BorrowedFd<'_>, dst: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "the layer is more than {MAX_DEPTH} directories deep"
        )));
    }
    let names = list(src)?;
    let mut entries = Vec::new();
    let mut hidden = Vec::new();
    let mut opaque = false;
    for name in &names {
        match whiteout(name).map_err(|reason| invalid(format!("layer entry {reason}")))? {
            Some(Whiteout::Opaque) => opaque = true,
            Some(Whiteout::Hide(name)) => hidden.push(name),
            None => entries.push(name),
        }
    }
    if opaque {
        for child in list(dst)? {
            remove_at(dst, &child)?;
        }
    }
    for name in hidden {
        remove_at(dst, name)?;
    }
    for name in entries {
        let name = name.as_os_str();
        match kind_at(src, name)? {
            Some(FileType::Directory) => {
                if kind_at(dst, name)? != Some(FileType::Directory) {
                    remove_at(dst, name)?;
                    rustix::fs::mkdirat(dst, name, Mode::from_raw_mode(0o755))?;
                }
                let from = open_dir(src, name)?;
                let to = open_dir(dst, name)?;
                merge_dirs(from.as_fd(), to.as_fd(), depth + 1)?;
                let mode = rustix::fs::fstat(&from)?.st_mode & MODE_BITS;
                rustix::fs::fchmod(&to, Mode::from_raw_mode(mode))?;
            }
            Some(FileType::Symlink) => {
                remove_at(dst, name)?;
                let target = rustix::fs::readlinkat(src, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name)?;
            }
            Some(FileType::RegularFile) => {
                remove_at(dst, name)?;
                rustix::fs::linkat(src, name, dst, name, AtFlags::empty())?;
            }
            // Nothing else is unpacked.
            _ => {}
        }
    }
    Ok(())
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

    /// One entry of a layer written header by header, so that names `tar::Builder` refuses
    /// (`..`, absolute paths) can be given.
    #[derive(Clone, Copy)]
    enum E<'a> {
        File(&'a str),
        Mode(&'a str, u32),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
        Hard(&'a str, &'a str),
        Fifo(&'a str),
    }

    fn raw_layer(entries: &[E<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in entries {
            let (name, kind, link, mode, data): (&str, _, Option<&str>, u32, &[u8]) = match *entry {
                E::File(name) => (name, tar::EntryType::Regular, None, 0o644, b"evil"),
                E::Mode(name, mode) => (name, tar::EntryType::Regular, None, mode, b"#!/bin/sh"),
                E::Dir(name) => (name, tar::EntryType::Directory, None, 0o755, b""),
                E::Symlink(name, to) => (name, tar::EntryType::Symlink, Some(to), 0o777, b""),
                E::Hard(name, to) => (name, tar::EntryType::Link, Some(to), 0o644, b""),
                E::Fifo(name) => (name, tar::EntryType::Fifo, None, 0o644, b""),
            };
            let mut header = tar::Header::new_gnu();
            let gnu = header.as_gnu_mut().expect("a GNU header");
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(link) = link {
                gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(512), 0);
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    /// A layer with one file `depth` directories deep (long names through GNU headers).
    fn deep_layer(depth: usize) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        let path = format!("{}f", "d/".repeat(depth));
        builder.append_data(&mut header, path, &b"x"[..]).unwrap();
        builder.into_inner().unwrap()
    }

    /// Puts `layers` in `store` as one image.
    fn image_of(store: &ImageStore, layers: &[Vec<u8>]) -> Digest {
        use oci::{ImageSpec, LayerRef, compress, sha256};
        let refs: Vec<LayerRef> = layers
            .iter()
            .map(|tar| {
                let gz = compress(tar);
                let digest = sha256(&gz);
                store.put_blob(&digest, &gz).unwrap();
                LayerRef {
                    digest,
                    diff_id: sha256(tar),
                    size: gz.len() as u64,
                }
            })
            .collect();
        store
            .write_image_on("test", &refs, &[], &ImageSpec::default())
            .unwrap()
            .digest
    }

    /// A directory with the runtime's layout, another app's unpacked image beside the one
    /// under test, and a file of the host's.
    struct Host {
        dir: tempfile::TempDir,
        store: ImageStore,
        unpacked: Unpacked,
    }

    const OTHER: &str = "sha256-eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

    impl Host {
        fn new() -> Host {
            let dir = tempfile::tempdir().unwrap();
            let store = ImageStore::open(dir.path().join("images")).unwrap();
            let unpacked = Unpacked::open(&dir.path().join("runtime")).unwrap();
            let other = dir.path().join("runtime/images").join(OTHER);
            std::fs::create_dir_all(other.join("workspace")).unwrap();
            std::fs::write(other.join("workspace/sentinel"), "other app").unwrap();
            std::fs::write(dir.path().join("sentinel"), "host").unwrap();
            Host {
                dir,
                store,
                unpacked,
            }
        }

        /// The other app's file and the host's, as they should still be.
        fn untouched(&self) -> Result<(), String> {
            let read = |p: PathBuf| {
                std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
            };
            let other = read(
                self.dir
                    .path()
                    .join("runtime/images")
                    .join(OTHER)
                    .join("workspace/sentinel"),
            )?;
            let host = read(self.dir.path().join("sentinel"))?;
            if (other.as_str(), host.as_str()) != ("other app", "host") {
                return Err(format!("changed: {other:?}, {host:?}"));
            }
            for dir in ["runtime/layers", "runtime/images"] {
                for entry in std::fs::read_dir(self.dir.path().join(dir)).unwrap() {
                    let name = entry.unwrap().file_name();
                    if name.to_string_lossy().starts_with(TMP_PREFIX) {
                        return Err(format!("{dir}/{name:?} left behind"));
                    }
                }
            }
            Ok(())
        }
    }

    #[test]
    fn hostile_layers_fail_and_touch_nothing_outside_their_own_directory() {
        // From the layer's temporary directory, `../../images/<other>` is the other app's
        // image and `../../../sentinel` the host's file.
        let other = format!("../../images/{OTHER}/workspace");
        let cases: Vec<(&str, Vec<Vec<u8>>, &str)> = vec![
            (
                "a file above the layer",
                vec![raw_layer(&[E::File("../../../sentinel")])],
                "climbs out with ..",
            ),
            (
                "a file climbing out midway",
                vec![raw_layer(&[E::File("workspace/../../../../sentinel")])],
                "climbs out with ..",
            ),
            (
                "an absolute file",
                vec![raw_layer(&[E::File("/tmp/slipway-evil")])],
                "is an absolute path",
            ),
            (
                "a whiteout of .",
                vec![raw_layer(&[E::File(".wh..")])],
                "whiteout of no plain name",
            ),
            (
                "a whiteout of ..",
                vec![raw_layer(&[E::File(".wh...")])],
                "whiteout of no plain name",
            ),
            (
                "a whiteout of nothing",
                vec![raw_layer(&[E::File("workspace/.wh.")])],
                "whiteout of no plain name",
            ),
            (
                "a whiteout of a whiteout",
                vec![raw_layer(&[E::File(".wh..wh.x")])],
                "whiteout of no plain name",
            ),
            (
                "a whiteout marker as a directory",
                vec![raw_layer(&[E::File(".wh.x/y")])],
                "whiteout marker as a directory",
            ),
            (
                "a whiteout that is a directory",
                vec![raw_layer(&[E::Dir(".wh.workspace/")])],
                "not a plain file",
            ),
            (
                "a whiteout that is a link",
                vec![raw_layer(&[E::Symlink(".wh.workspace", "/")])],
                "not a plain file",
            ),
            (
                "a whiteout climbing out",
                vec![raw_layer(&[E::File("../.wh.images")])],
                "climbs out with ..",
            ),
            (
                "a file through a symlink to /",
                vec![raw_layer(&[
                    E::Symlink("up", "/"),
                    E::File("up/tmp/slipway-evil"),
                ])],
                "beneath the symbolic link \"up\"",
            ),
            (
                "a file through a symlink to ..",
                vec![raw_layer(&[
                    E::Symlink("up", "../../.."),
                    E::File("up/sentinel"),
                ])],
                "beneath the symbolic link \"up\"",
            ),
            (
                "a directory through a symlink",
                vec![raw_layer(&[
                    E::Symlink("up", "../.."),
                    E::Dir("up/images/"),
                ])],
                "beneath the symbolic link \"up\"",
            ),
            (
                "a hard link out of the layer",
                vec![raw_layer(&[E::Hard("h", &other)])],
                "hard link to a path that climbs out",
            ),
            (
                "a hard link to a host file",
                vec![raw_layer(&[E::Hard("h", "/etc/passwd")])],
                "hard link to a path that is an absolute path",
            ),
            (
                "a hard link to a later entry",
                vec![raw_layer(&[E::Hard("h", "later"), E::File("later")])],
                "no earlier file of its layer",
            ),
            (
                "a hard link to a symlink",
                vec![raw_layer(&[
                    E::Symlink("s", "/etc/passwd"),
                    E::Hard("h", "s"),
                ])],
                "no earlier file of its layer",
            ),
            (
                "a hard link through a symlink",
                vec![raw_layer(&[
                    E::Dir("d/"),
                    E::File("d/f"),
                    E::Symlink("s", "d"),
                    E::Hard("h", "s/f"),
                ])],
                "no earlier file of its layer",
            ),
            (
                "a hard link to itself",
                vec![raw_layer(&[E::File("h"), E::Hard("h", "h")])],
                "no earlier file of its layer",
            ),
            (
                "a path too deep",
                vec![deep_layer(MAX_DEPTH + 1)],
                "directories deep",
            ),
            (
                "a symlink in a lower layer, a file through it above",
                vec![
                    raw_layer(&[E::Symlink("up", "../../..")]),
                    raw_layer(&[E::File("up/sentinel")]),
                ],
                "ok",
            ),
            (
                "a symlink in a lower layer, a whiteout through it above",
                vec![
                    raw_layer(&[E::Symlink("up", "../../..")]),
                    raw_layer(&[E::File("up/.wh.sentinel")]),
                ],
                "ok",
            ),
            (
                "a symlink to another app's image, an opaque directory through it above",
                vec![
                    raw_layer(&[E::Symlink("up", &format!("../{OTHER}/workspace"))]),
                    raw_layer(&[E::File("up/.wh..wh..opq")]),
                ],
                "ok",
            ),
        ];
        let mut failures = Vec::new();
        for (what, layers, expected) in cases {
            let host = Host::new();
            let image = image_of(&host.store, &layers);
            let outcome = match host.unpacked.get(&host.store, &image) {
                Ok(root) => {
                    // Allowed only where what came through the link is a plain part of the image.
                    let up = std::fs::symlink_metadata(root.join("up")).map(|m| m.is_dir());
                    if up.as_ref().ok() == Some(&true) {
                        "ok".to_owned()
                    } else {
                        format!("ok, but up is {up:?}")
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    assert!(!text.contains('\n'), "{what}: one line: {text}");
                    text
                }
            };
            if !outcome.contains(expected) {
                failures.push(format!("{what}: expected {expected:?}, got {outcome:?}"));
            }
            if let Err(e) = host.untouched() {
                failures.push(format!("{what}: {e}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn devices_are_skipped_and_setuid_bits_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let host = Host::new();
        let layer = raw_layer(&[
            E::Dir("bin/"),
            E::Mode("bin/su", 0o4755),
            E::Mode("bin/sg", 0o2755),
            E::Dir("tmp/"),
            E::Fifo("tmp/fifo"),
            E::File("./etc/../etc-file"),
        ]);
        // `..` anywhere is refused, even where it would stay inside.
        let err = host
            .unpacked
            .get(&host.store, &image_of(&host.store, &[layer]))
            .unwrap_err();
        assert!(err.to_string().contains("climbs out with .."), "{err}");
        let layer = raw_layer(&[
            E::Dir("./bin/"),
            E::Mode("bin/su", 0o4755),
            E::Mode("./bin//sg", 0o2755),
            E::Dir("tmp/"),
            E::Fifo("tmp/fifo"),
            // A directory replaced by a link later in the layer: the link stays a link.
            E::Dir("d/"),
            E::Symlink("d", "/"),
        ]);
        let root = host
            .unpacked
            .get(&host.store, &image_of(&host.store, &[layer]))
            .unwrap();
        let mode = |p: &str| {
            std::fs::metadata(root.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!((mode("bin/su"), mode("bin/sg")), (0o755, 0o755));
        assert!(!root.join("tmp/fifo").exists());
        assert!(
            std::fs::symlink_metadata(root.join("d"))
                .unwrap()
                .is_symlink()
        );
        host.untouched().unwrap();
    }
}
