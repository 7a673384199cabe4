//! Reading (and writing) files a tenant controls: the pushed source, a build's layers and
//! cache, a buildpack fetched from a tenant's URL.
//!
//! slipwayd runs as root outside the sandbox, so it never opens such a file by its path: a
//! [`Tree`] is a handle on a directory, and every path under it is resolved by the kernel
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so it can neither climb out with
//! `..` nor pass through a symbolic link, whoever swaps what in the meantime. Symbolic links
//! are seen as links (to copy or store as links), never followed; a link where a file or a
//! directory is expected is an error that says so. Files read whole are bounded
//! ([`MAX_FILE`]), so a build cannot make the platform allocate without bound.
//!
//! Architecture invariant: outside this module the builder opens no path that a tenant can
//! write, except to hand it to the sandbox.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::BuildError;

/// The largest file the platform reads whole from a tenant's tree: a Procfile, a TOML file,
/// an env var of a layer.
pub(crate) const MAX_FILE: u64 = 1024 * 1024;

/// The deepest a walk goes below a tree's root: every walk recurses, so this bounds the
/// stack and the descriptors a tenant's tree can make the platform use.
pub(crate) const MAX_DEPTH: usize = 256;

/// The most entries read from one directory.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;

/// Resolution beneath a tree: no `..` out, no absolute paths, no symbolic links at all.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

/// What an entry is, by `lstat`: a link is a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets: never read.
    Other,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// A directory a tenant can write, held open; everything under it is reached through it.
#[derive(Debug)]
pub(crate) struct Tree {
    fd: OwnedFd,
    /// Where it is, for handing to the sandbox and for tests; never reopened by the platform.
    path: PathBuf,
    /// How messages name it to the pusher, such as `layers/test_old` (empty for none).
    label: String,
    /// How far below the root it was opened.
    depth: usize,
}

impl Tree {
    /// Opens `path`, a directory the platform made or the operator named; its last
    /// component must not be a symbolic link. `label` names it in messages.
    pub(crate) fn open(path: &Path, label: &str) -> Result<Tree, BuildError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(rustix::fs::CWD, path, flags, Mode::empty())
            .map_err(|e| error(e, label))?;
        Ok(Tree {
            fd,
            path: path.to_path_buf(),
            label: label.to_owned(),
            depth: 0,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// How messages name `relative` in this tree.
    pub(crate) fn name(&self, relative: &Path) -> String {
        let relative = relative.display().to_string();
        match (
            self.label.is_empty(),
            relative.is_empty() || relative == ".",
        ) {
            (true, _) => relative,
            (false, true) => self.label.clone(),
            (false, false) => format!("{}/{relative}", self.label),
        }
    }

    /// The directory `relative` beneath this one; `None` when it does not exist. A link on
    /// the way is an error.
    pub(crate) fn dir(&self, relative: &Path) -> Result<Option<Tree>, BuildError> {
        let depth = self.depth + relative.components().count();
        if depth > MAX_DEPTH {
            return Err(BuildError::TooDeep(self.name(relative), MAX_DEPTH));
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match self.open_beneath(relative, flags) {
            Ok(fd) => Ok(Some(Tree {
                fd,
                path: self.path.join(relative),
                label: self.name(relative),
                depth,
            })),
            Err(Errno::NOENT) => Ok(None),
            // O_DIRECTORY with O_NOFOLLOW says ENOTDIR for a link: say which it was.
            Err(Errno::NOTDIR) if self.kind(relative)? == Some(Kind::Symlink) => {
                Err(BuildError::Link(self.name(relative)))
            }
            Err(e) => Err(error(e, &self.name(relative))),
        }
    }

    /// What `relative` is, without following a link; `None` when it does not exist.
    pub(crate) fn kind(&self, relative: &Path) -> Result<Option<Kind>, BuildError> {
        match self.lstat(relative) {
            Ok(stat) => Ok(Some(Kind::of(FileType::from_raw_mode(stat.st_mode)))),
            Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
            Err(e) => Err(error(e, &self.name(relative))),
        }
    }

    /// The metadata of `relative` itself (a link's own, not its target's).
    pub(crate) fn metadata(&self, relative: &Path) -> Result<std::fs::Metadata, BuildError> {
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .open_beneath(relative, flags)
            .map_err(|e| error(e, &self.name(relative)))?;
        Ok(std::fs::File::from(fd).metadata()?)
    }

    /// Reads the regular file `relative` as UTF-8, up to [`MAX_FILE`]; `None` when it does
    /// not exist. A link, a directory or a larger file is an error naming it.
    pub(crate) fn read(&self, relative: &Path) -> Result<Option<String>, BuildError> {
        let mut file = match self.open_file(relative) {
            Ok(file) => file,
            Err(BuildError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut bytes = Vec::new();
        (&mut file).take(MAX_FILE + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(BuildError::TooLarge {
                name: self.name(relative),
                limit: MAX_FILE,
            });
        }
        String::from_utf8(bytes).map(Some).map_err(|_| {
            BuildError::Buildpack(format!(
                "{} is not UTF-8 text: write it as UTF-8",
                self.name(relative)
            ))
        })
    }

    /// Opens the regular file `relative` for reading.
    pub(crate) fn open_file(&self, relative: &Path) -> Result<std::fs::File, BuildError> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match self.open_beneath(relative, flags) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(std::io::Error::from(Errno::NOENT).into()),
            Err(e) => return Err(error(e, &self.name(relative))),
        };
        let file = std::fs::File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(BuildError::NotAFile(self.name(relative)));
        }
        Ok(file)
    }

    /// The target of the link `relative`, as written (never resolved).
    pub(crate) fn read_link(&self, relative: &Path) -> Result<PathBuf, BuildError> {
        let (parent, name) = self.parent_of(relative)?;
        let target = rustix::fs::readlinkat(parent.as_fd(), name, Vec::new())
            .map_err(|e| error(e, &self.name(relative)))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// This directory's entries, sorted by name, with what each is.
    pub(crate) fn entries(&self) -> Result<Vec<(OsString, Kind)>, BuildError> {
        let mut found = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd).map_err(std::io::Error::from)? {
            let entry = entry.map_err(std::io::Error::from)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                FileType::Unknown => self.kind(Path::new(name))?.unwrap_or(Kind::Other),
                known => Kind::of(known),
            };
            found.push((name.to_owned(), kind));
            if found.len() > MAX_ENTRIES {
                return Err(BuildError::TooManyEntries(
                    self.name(Path::new("")),
                    MAX_ENTRIES,
                ));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Sets this directory's own permission bits.
    pub(crate) fn set_permissions(
        &self,
        permissions: std::fs::Permissions,
    ) -> Result<(), BuildError> {
        use std::os::unix::fs::PermissionsExt;
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(permissions.mode() & 0o7777))
            .map_err(|e| error(e, &self.name(Path::new(""))))
    }

    /// What changes whenever anything under this tree changes, read from the inodes alone
    /// (no file is read): every entry's path, kind, mode, size, inode, and modification and
    /// change times. The change time is the kernel's, which no one can set back, so a file
    /// written and given its old modification time still shows. The root's own change time
    /// is left out: moving the tree sets it. Blocking.
    pub(crate) fn fingerprint(&self) -> Result<String, BuildError> {
        let mut seen = Vec::new();
        let root = rustix::fs::fstat(&self.fd).map_err(std::io::Error::from)?;
        seen.extend_from_slice(format!("{:o} {}\n", root.st_mode, root.st_ino).as_bytes());
        self.fingerprint_into(Path::new(""), &mut seen)?;
        Ok(oci::sha256(&seen).hex().to_owned())
    }

    fn fingerprint_into(&self, at: &Path, seen: &mut Vec<u8>) -> Result<(), BuildError> {
        for (name, kind) in self.entries()? {
            let stat = rustix::fs::statat(&self.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| error(e, &self.name(Path::new(&name))))?;
            let path = at.join(&name);
            seen.extend_from_slice(path.as_os_str().as_bytes());
            seen.extend_from_slice(
                format!(
                    "\0{:o} {} {} {}.{} {}.{}\n",
                    stat.st_mode,
                    stat.st_size,
                    stat.st_ino,
                    stat.st_mtime,
                    stat.st_mtime_nsec,
                    stat.st_ctime,
                    stat.st_ctime_nsec
                )
                .as_bytes(),
            );
            if kind == Kind::Dir
                && let Some(dir) = self.dir(Path::new(&name))?
            {
                dir.fingerprint_into(&path, seen)?;
            }
        }
        Ok(())
    }

    /// Makes the directory `relative` and any parents missing; a link on the way is an error.
    pub(crate) fn create_dir_all(&self, relative: &Path) -> Result<Tree, BuildError> {
        let mut so_far = PathBuf::new();
        for part in normal(relative, &self.name(relative))? {
            so_far.push(part);
            match rustix::fs::mkdirat(&self.fd, &so_far, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(error(e, &self.name(&so_far))),
            }
        }
        self.dir(relative)?
            .ok_or_else(|| std::io::Error::from(Errno::NOENT).into())
    }

    /// Removes `relative` and, if it is a directory, everything in it, never following a
    /// link; missing is fine.
    pub(crate) fn remove_all(&self, relative: &Path) -> Result<(), BuildError> {
        match self.kind(relative)? {
            None => return Ok(()),
            Some(Kind::Dir) => {
                if let Some(dir) = self.dir(relative)? {
                    for (name, _) in dir.entries()? {
                        dir.remove_all(Path::new(&name))?;
                    }
                }
                let (parent, name) = self.parent_of(relative)?;
                rustix::fs::unlinkat(parent.as_fd(), name, AtFlags::REMOVEDIR)
            }
            Some(_) => {
                let (parent, name) = self.parent_of(relative)?;
                rustix::fs::unlinkat(parent.as_fd(), name, AtFlags::empty())
            }
        }
        .map_err(|e| error(e, &self.name(relative)))
    }

    /// Copies `from` (a file, a link, or a tree) of this tree to `to` in `dest`, replacing
    /// what is there: links copied as links, modes kept, devices and fifos left out.
    pub(crate) fn copy_to(&self, from: &Path, dest: &Tree, to: &Path) -> Result<(), BuildError> {
        dest.remove_all(to)?;
        match self.kind(from)? {
            None | Some(Kind::Other) => Ok(()),
            Some(Kind::Symlink) => {
                let target = self.read_link(from)?;
                let (parent, name) = dest.parent_of(to)?;
                rustix::fs::symlinkat(&target, parent.as_fd(), name)
                    .map_err(|e| error(e, &dest.name(to)))
            }
            Some(Kind::Dir) => {
                let Some(dir) = self.dir(from)? else {
                    return Ok(());
                };
                let made = dest.create_dir_all(to)?;
                for (name, _) in dir.entries()? {
                    dir.copy_to(Path::new(&name), &made, Path::new(&name))?;
                }
                let mode = self.metadata(from)?.permissions();
                std::fs::File::from(made.fd).set_permissions(mode)?;
                Ok(())
            }
            Some(Kind::File) => {
                let mut source = self.open_file(from)?;
                let mode = source.metadata()?.permissions();
                let (parent, name) = dest.parent_of(to)?;
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd =
                    rustix::fs::openat(parent.as_fd(), name, flags, Mode::from_raw_mode(0o600))
                        .map_err(|e| error(e, &dest.name(to)))?;
                let mut target = std::fs::File::from(fd);
                std::io::copy(&mut source, &mut target)?;
                target.set_permissions(mode)?;
                Ok(())
            }
        }
    }

    /// Moves `from` (a file, a link, or a tree) of this tree to `to` in `dest`, replacing
    /// what is there: a rename, so a cache of any size moves at once; copied, then removed,
    /// when the two are on different filesystems.
    pub(crate) fn move_to(&self, from: &Path, dest: &Tree, to: &Path) -> Result<(), BuildError> {
        if self.kind(from)?.is_none() {
            return Ok(());
        }
        dest.remove_all(to)?;
        let (old_parent, old_name) = self.parent_of(from)?;
        let (new_parent, new_name) = dest.parent_of(to)?;
        match rustix::fs::renameat(&old_parent, old_name, &new_parent, new_name) {
            Ok(()) => Ok(()),
            Err(Errno::XDEV) => {
                self.copy_to(from, dest, to)?;
                self.remove_all(from)
            }
            Err(e) => Err(error(e, &self.name(from))),
        }
    }

    /// Writes `bytes` to a new file `relative`, replacing whatever the tenant left there (a
    /// link is removed, never written through).
    pub(crate) fn write(&self, relative: &Path, bytes: &[u8]) -> Result<(), BuildError> {
        self.remove_all(relative)?;
        let (parent, name) = self.parent_of(relative)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(parent.as_fd(), name, flags, Mode::from_raw_mode(0o644))
            .map_err(|e| error(e, &self.name(relative)))?;
        std::io::Write::write_all(&mut std::fs::File::from(fd), bytes)?;
        Ok(())
    }

    /// Makes `relative` a symbolic link to `target` (written as given, never resolved); a
    /// link on the way to it is an error.
    pub(crate) fn symlink(&self, relative: &Path, target: &Path) -> Result<(), BuildError> {
        let (parent, name) = self.parent_of(relative)?;
        rustix::fs::symlinkat(target, parent.as_fd(), name)
            .map_err(|e| error(e, &self.name(relative)))
    }

    /// The directory holding `relative`, opened beneath, and its last component.
    fn parent_of<'p>(&self, relative: &'p Path) -> Result<(OwnedFd, &'p OsStr), BuildError> {
        let parts = normal(relative, &self.name(relative))?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(BuildError::Buildpack(format!(
                "{} names no file",
                self.name(relative)
            )));
        };
        let parent: PathBuf = dirs.iter().collect();
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .open_beneath(&parent, flags)
            .map_err(|e| error(e, &self.name(&parent)))?;
        Ok((fd, name))
    }

    fn lstat(&self, relative: &Path) -> Result<rustix::fs::Stat, Errno> {
        let fd = self.open_beneath(relative, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)?;
        rustix::fs::fstat(fd)
    }

    fn open_beneath(&self, relative: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        rustix::fs::openat2(&self.fd, relative, flags, Mode::empty(), BENEATH)
    }
}

/// The plain components of `relative`: no root, no `..`.
fn normal<'p>(relative: &'p Path, name: &str) -> Result<Vec<&'p OsStr>, BuildError> {
    relative
        .components()
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(part) => Ok(part),
            _ => Err(BuildError::Outside(name.to_owned())),
        })
        .collect()
}

/// The error for `errno` on the tenant's path `name`.
fn error(errno: Errno, name: &str) -> BuildError {
    match errno {
        // RESOLVE_NO_SYMLINKS and O_NOFOLLOW both say ELOOP.
        Errno::LOOP => BuildError::Link(name.to_owned()),
        // RESOLVE_BENEATH says EXDEV for `..` out of the tree and for absolute paths.
        Errno::XDEV => BuildError::Outside(name.to_owned()),
        Errno::NOTDIR => BuildError::NotADirectory(name.to_owned()),
        other => BuildError::Io(std::io::Error::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("file"), "inside").unwrap();
        std::fs::write(dir.path().join("secret"), "SECRET").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("file", root.join("near")).unwrap();
        std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
        let tree = Tree::open(&root, "app").unwrap();
        (dir, tree)
    }

    #[test]
    fn links_and_escapes_are_refused_by_every_reader() {
        let (_dir, tree) = tree();
        assert_eq!(tree.read(Path::new("file")).unwrap().unwrap(), "inside");
        assert!(tree.read(Path::new("missing")).unwrap().is_none());
        let cases = [
            ("abs", "app/abs is a symbolic link"),
            ("rel", "app/rel is a symbolic link"),
            ("near", "app/near is a symbolic link"),
            ("up/secret", "app/up/secret is a symbolic link"),
            ("../secret", "app/../secret is outside"),
            ("sub/../../secret", "app/sub/../../secret is outside"),
            ("sub", "app/sub is not a file"),
        ];
        for (path, message) in cases {
            let err = tree.read(Path::new(path)).unwrap_err().to_string();
            assert!(err.starts_with(message), "{path}: {err}");
            assert!(!err.contains("SECRET"));
        }
        assert!(matches!(
            tree.dir(Path::new("up")),
            Err(BuildError::Link(_))
        ));
        assert_eq!(tree.kind(Path::new("abs")).unwrap(), Some(Kind::Symlink));
        assert_eq!(
            tree.read_link(Path::new("rel")).unwrap(),
            Path::new("../secret")
        );
    }

    #[test]
    fn a_copy_keeps_links_as_links_and_removal_stays_inside() {
        let (dir, tree) = tree();
        let dest_path = dir.path().join("dest");
        std::fs::create_dir(&dest_path).unwrap();
        let dest = Tree::open(&dest_path, "dest").unwrap();
        tree.copy_to(Path::new(""), &dest, Path::new("copy"))
            .unwrap();
        let copy = dest_path.join("copy");
        assert_eq!(
            std::fs::read_to_string(copy.join("file")).unwrap(),
            "inside"
        );
        assert!(copy.join("abs").symlink_metadata().unwrap().is_symlink());
        assert!(copy.join("up").symlink_metadata().unwrap().is_symlink());
        dest.remove_all(Path::new("copy")).unwrap();
        assert!(!copy.exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("secret")).unwrap(),
            "SECRET",
            "removal did not go through the links"
        );
        assert!(tree.path().join("file").exists());
    }
}
