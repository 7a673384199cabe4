//! Image layers unpacked onto a directory, safely: a layer is hostile input. Every entry's
//! path is parsed into plain names (no `..`, no absolute path, no more than [`MAX_DEPTH`]
//! deep), and every file operation is made on a directory handle with one such name
//! (`openat`, `mkdirat`, `linkat`, … with `O_NOFOLLOW`), never on a joined path: a symbolic
//! link in a layer is written, never followed, and an entry beneath one is refused. Hard
//! links go only to earlier files of the same layer; whiteouts hide only one plain name
//! (`.wh..`, `.wh...` and `.wh.` alone are refused) and the only opaque marker is
//! `.wh..wh..opq`. Devices and FIFOs are skipped, setuid and setgid bits dropped.
//!
//! [`unpack`] writes one layer as it is, whiteout markers included; [`merge`] lays an unpacked
//! layer over a root filesystem, applying them. The local runtime composes images with both;
//! the builder unpacks a Dockerfile's `FROM` image with them. Blocking.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// The most names a layer entry's path may have; deeper is refused.
pub const MAX_DEPTH: usize = 128;
/// The mode bits kept: permissions and the sticky bit, never setuid or setgid.
const MODE_BITS: u32 = 0o1777;

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
pub fn unpack(tar: impl io::Read, root: &Path) -> io::Result<()> {
    unpack_keeping(tar, root, MODE_BITS)
}

/// [`unpack`], keeping the mode bits `mode_bits` (a Dockerfile stage's root file system,
/// inside the build sandbox, keeps setuid and setgid as recorded: `0o7777`).
fn unpack_keeping(tar: impl io::Read, root: &Path, mode_bits: u32) -> io::Result<()> {
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
            & mode_bits;
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
pub fn merge(src: &Path, dst: &Path) -> io::Result<()> {
    merge_keeping(src, dst, MODE_BITS)
}

/// [`merge`], keeping the directory mode bits `mode_bits`.
pub fn merge_keeping(src: &Path, dst: &Path, mode_bits: u32) -> io::Result<()> {
    let src = open_root(src)?;
    let dst = open_root(dst)?;
    merge_dirs(src.as_fd(), dst.as_fd(), 0, mode_bits)
}

fn merge_dirs(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    depth: usize,
    mode_bits: u32,
) -> io::Result<()> {
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
                merge_dirs(from.as_fd(), to.as_fd(), depth + 1, mode_bits)?;
                let mode = rustix::fs::fstat(&from)?.st_mode & mode_bits;
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

/// Lays the layer `digest` of `store` over the root file system `root`: unpacked into a
/// temporary directory of `tmp` (on the same file system as `root`), merged, and the
/// temporary directory removed, so `root` alone holds its files. Every mode bit is kept:
/// this is a Dockerfile stage's root, used only inside the build sandbox.
pub fn apply_layer(
    store: &crate::ImageStore,
    digest: &domain::Digest,
    root: &Path,
    tmp: &Path,
) -> io::Result<()> {
    let unpacked = tempfile::Builder::new().prefix("layer-").tempdir_in(tmp)?;
    let blob = store.open_blob(digest)?;
    unpack_keeping(
        flate2::read::MultiGzDecoder::new(io::BufReader::new(blob)),
        unpacked.path(),
        0o7777,
    )
    .map_err(|e| io::Error::new(e.kind(), format!("layer {digest}: {e}")))?;
    merge_keeping(unpacked.path(), root, 0o7777)
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
