//! The gateway's own reads and writes of an app's repository, through libgit2 (`git2`):
//! creating the bare repository, whether a ref reaches a commit or a branch points at it,
//! and exporting the pushed commit's tree for the build. The wire protocol stays git's own
//! (`git receive-pack`, `git upload-pack`).
//!
//! A push's objects wait in git's quarantine until the pre-receive hook accepts it, so the
//! export opens the repository with that directory as an alternate object store. Of what
//! the hook reports it takes only the directory's name, and only a name git makes
//! (`tmp_objdir-incoming-*`), beneath the repository's own `objects/`.
//!
//! The tree is the tenant's and is hostile: every name must be plain (not empty, no `/` or
//! NUL, not `.`, `..` or `.git`), no entry deeper than [`MAX_DEPTH`], no more than
//! [`MAX_ENTRIES`] of them, and their content no more than the push limit, checked from the
//! object's header before it is read (a blob is then held whole, so that limit also bounds
//! the memory an export takes). The tree is written into a directory the export makes,
//! through directory handles only (`*at` calls, `O_NOFOLLOW`, `O_EXCL`): a symbolic link in
//! it is written as a link and never followed, and a second entry of one name is refused
//! rather than written through the first. Like `git archive | tar -x`: files are 0644 or
//! 0755, directories 0755, everything dated at the commit's time, and a submodule (gitlink)
//! is an empty directory, which the pusher is told. Unlike it, `.gitattributes`
//! (`export-ignore`, `export-subst`, end-of-line conversion) is not applied: the build gets
//! the commit as it is.
//!
//! Every libgit2 call blocks: the async functions here run them on the blocking pool.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tokio_util::sync::CancellationToken;

use crate::Error;

/// The deepest an entry of an exported tree may be, as deep as the builder walks a tree.
pub(crate) const MAX_DEPTH: usize = 256;

/// The most entries (files, links, directories) an export writes: a tree can name one
/// subtree many times, so a small push could otherwise fill the disk with names.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;

/// The longest symbolic link target written (`PATH_MAX` less its NUL).
const MAX_LINK: usize = 4095;

/// The most submodules named to the pusher; the rest are counted.
const MAX_NOTICES: usize = 20;

/// How git names a push's quarantine directory in `objects/`.
const QUARANTINE_PREFIX: &str = "tmp_objdir-incoming-";

/// The hook's variable that names the quarantine directory.
const QUARANTINE_VAR: &str = "GIT_QUARANTINE_PATH";

/// How large an exported tree may be.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The most bytes of file content and link targets (the push limit).
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: usize,
    pub(crate) max_depth: usize,
}

impl Limits {
    /// The limits of a push that may send `max_bytes`.
    pub(crate) fn new(max_bytes: u64) -> Limits {
        Limits {
            max_bytes,
            max_entries: MAX_ENTRIES,
            max_depth: MAX_DEPTH,
        }
    }
}

/// What an export has to tell the pusher besides the files it wrote.
#[derive(Debug, Default)]
pub(crate) struct Exported {
    pub(crate) notices: Vec<String>,
}

/// Creates the bare repository at `path` unless it exists, as `git init --bare
/// --initial-branch=main` did.
pub(crate) async fn create(path: &Path) -> Result<(), Error> {
    let path = path.to_path_buf();
    blocking(move || create_blocking(&path)).await
}

fn create_blocking(path: &Path) -> Result<(), Error> {
    if path.join("HEAD").exists() {
        return Ok(());
    }
    let mut options = git2::RepositoryInitOptions::new();
    // libgit2's built-in template, not whatever the host's git installs as one.
    options
        .bare(true)
        .initial_head("main")
        .external_template(false)
        .mkpath(false);
    Repository::init_opts(path, &options)?;
    Ok(())
}

/// Whether a ref of `repo` reaches `commit`. A commit the repository lacks is not reached,
/// nor is anything when the repository cannot be read.
pub(crate) async fn reachable(repo: &Path, commit: &str) -> bool {
    let Some(commit) = parse_oid(commit) else {
        return false;
    };
    let path = repo.to_path_buf();
    let found = blocking(move || {
        let repo = Repository::open_bare(&path)?;
        Ok(reaches(&repo, commit)?)
    })
    .await;
    found.unwrap_or_else(|err| {
        tracing::warn!(repo = %repo.display(), error = %err, "cannot read a repository");
        false
    })
}

fn reaches(repo: &Repository, commit: Oid) -> Result<bool, git2::Error> {
    if repo.find_commit(commit).is_err() {
        return Ok(false);
    }
    let mut walk = repo.revwalk()?;
    for reference in repo.references()? {
        // A ref that names no commit (a tag of a tree, say) reaches no commit.
        if let Ok(tip) = reference.and_then(|r| r.peel_to_commit()) {
            walk.push(tip.id())?;
        }
    }
    for id in walk {
        if id? == commit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `branch` (such as `refs/heads/main`) of `repo` points at `commit`: a push's ref
/// moved.
pub(crate) async fn points_at(repo: &Path, branch: &str, commit: &str) -> bool {
    let Some(commit) = parse_oid(commit) else {
        return false;
    };
    let (path, branch) = (repo.to_path_buf(), branch.to_owned());
    let found = blocking(move || {
        let repo = Repository::open_bare(&path)?;
        let tip = match repo.find_reference(&branch) {
            Ok(reference) => reference.peel_to_commit()?.id(),
            Err(err) if err.code() == git2::ErrorCode::NotFound => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        Ok(tip == commit)
    })
    .await;
    found.unwrap_or_else(|err| {
        tracing::warn!(repo = %repo.display(), error = %err, "cannot read a repository");
        false
    })
}

/// Writes the tree of `commit` into `dest`, which it creates (its parent must exist),
/// reading the pushed objects from the quarantine that `git_env` (the hook's) names. A tree
/// it refuses is [`Error::Refused`], with the reason for the pusher; on any error `dest` is
/// removed. `cancel` stops it between entries.
pub(crate) async fn export(
    repo: &Path,
    commit: &str,
    git_env: &BTreeMap<String, String>,
    dest: &Path,
    limits: Limits,
    cancel: &CancellationToken,
) -> Result<Exported, Error> {
    let (repo, commit, dest) = (repo.to_path_buf(), commit.to_owned(), dest.to_path_buf());
    let quarantine = git_env.get(QUARANTINE_VAR).cloned();
    let cancel = cancel.clone();
    blocking(move || {
        export_blocking(
            &repo,
            &commit,
            quarantine.as_deref(),
            &dest,
            limits,
            &cancel,
        )
    })
    .await
}

fn export_blocking(
    repo_path: &Path,
    commit: &str,
    quarantine: Option<&str>,
    dest: &Path,
    limits: Limits,
    cancel: &CancellationToken,
) -> Result<Exported, Error> {
    let repo = Repository::open_bare(repo_path)?;
    if let Some(reported) = quarantine {
        let objects = quarantine_dir(repo_path, reported)?;
        let objects = objects.to_str().ok_or_else(|| {
            Error::Io(std::io::Error::other(
                "the repositories' directory is not valid UTF-8; give slipwayd a data directory whose path is",
            ))
        })?;
        repo.odb()?.add_disk_alternate(objects)?;
    }
    let id = parse_oid(commit).ok_or_else(|| {
        Error::Io(std::io::Error::other(format!(
            "{commit:?} is not a commit id"
        )))
    })?;
    let commit = repo.find_commit(id)?;
    let tree = commit.tree()?;
    let mode = Mode::from_raw_mode(0o755);
    rustix::fs::mkdir(dest, mode).map_err(|e| io_error(e, &dest.display().to_string()))?;
    let mut writer = Writer {
        repo: &repo,
        odb: repo.odb()?,
        limits,
        cancel,
        time: commit.time().seconds(),
        bytes: 0,
        entries: 0,
        submodules: Vec::new(),
        more_submodules: 0,
    };
    let written = open_dir(
        rustix::fs::CWD,
        dest.as_os_str(),
        &dest.display().to_string(),
    )
    .and_then(|root| writer.write_tree(&tree, &root, "", 0));
    if let Err(err) = written {
        if let Err(left) = std::fs::remove_dir_all(dest) {
            tracing::warn!(dest = %dest.display(), error = %left, "cannot remove a failed export");
        }
        return Err(err);
    }
    let mut notices: Vec<String> = writer
        .submodules
        .iter()
        .map(|path| {
            format!(
                "-----> {path} is a submodule: Slipway does not fetch submodules, so the build sees an empty directory"
            )
        })
        .collect();
    if writer.more_submodules > 0 {
        notices.push(format!(
            "-----> ... and {} more submodules, empty too",
            writer.more_submodules
        ));
    }
    Ok(Exported { notices })
}

/// The quarantine directory the hook reported, as a directory of `repo`'s own: only its
/// name is taken, and only a name git makes.
fn quarantine_dir(repo: &Path, reported: &str) -> Result<PathBuf, Error> {
    let name = Path::new(reported)
        .file_name()
        .and_then(OsStr::to_str)
        .filter(|name| {
            name.strip_prefix(QUARANTINE_PREFIX).is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
        })
        .ok_or_else(|| {
            Error::Io(std::io::Error::other(format!(
                "the hook reported {reported:?} as git's quarantine, which is no name git makes; is the hook slipwayd's?"
            )))
        })?;
    let dir = repo.join("objects").join(name);
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err(Error::Io(std::io::Error::other(format!(
            "{} is not a directory: the push's quarantine is gone",
            dir.display()
        )))),
        Err(err) => Err(Error::Io(std::io::Error::other(format!(
            "cannot find the push's quarantine {}: {err}",
            dir.display()
        )))),
    }
}

/// Writes one tree's entries into a directory, depth first.
struct Writer<'r> {
    repo: &'r Repository,
    odb: git2::Odb<'r>,
    limits: Limits,
    cancel: &'r CancellationToken,
    /// The commit's time (seconds since the epoch): every entry's times.
    time: i64,
    bytes: u64,
    entries: usize,
    submodules: Vec<String>,
    more_submodules: usize,
}

impl<'r> Writer<'r> {
    /// Writes the entries of `tree`, which is `prefix` (empty at the top), into `dir`.
    fn write_tree(
        &mut self,
        tree: &git2::Tree<'_>,
        dir: &OwnedFd,
        prefix: &str,
        depth: usize,
    ) -> Result<(), Error> {
        for entry in tree.iter() {
            let raw = entry.name_bytes();
            let path = shown(prefix, raw);
            check_name(raw, prefix)?;
            if self.cancel.is_cancelled() {
                return Err(Error::Refused(
                    "the push was cancelled: the connection closed".to_owned(),
                ));
            }
            self.entries += 1;
            if self.entries > self.limits.max_entries {
                return Err(Error::Refused(format!(
                    "the pushed commit has more than {} files and directories; make it smaller",
                    self.limits.max_entries
                )));
            }
            if depth + 1 > self.limits.max_depth {
                return Err(Error::Refused(format!(
                    "{path} is nested more than {} directories deep; flatten it",
                    self.limits.max_depth
                )));
            }
            let name = OsStr::from_bytes(raw);
            match entry.filemode() {
                0o040000 => {
                    let subtree = match self.repo.find_tree(entry.id()) {
                        Ok(subtree) => subtree,
                        Err(err) if err.code() == git2::ErrorCode::NotFound => {
                            return Err(Error::Refused(format!(
                                "{path} is a directory entry that names no directory: rewrite the commit without it"
                            )));
                        }
                        Err(err) => return Err(err.into()),
                    };
                    let sub = self.make_dir(dir, name, &path)?;
                    self.write_tree(&subtree, &sub, &path, depth + 1)?;
                    self.date(&sub, &path)?;
                }
                mode @ (0o100644 | 0o100755) => {
                    let blob = self.blob(entry.id(), &path, "file")?;
                    let perm = if mode == 0o100755 { 0o755 } else { 0o644 };
                    let flags = OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC;
                    let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(perm))
                        .map_err(|e| created(e, &path))?;
                    // The umask is not the tree's business: the mode is set, not masked.
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(perm))
                        .map_err(|e| io_error(e, &path))?;
                    let mut file = std::fs::File::from(fd);
                    file.write_all(blob.content())
                        .map_err(|e| Error::Io(std::io::Error::other(format!("{path}: {e}"))))?;
                    self.date(&file, &path)?;
                }
                0o120000 => {
                    let blob = self.blob(entry.id(), &path, "symbolic link")?;
                    let target = blob.content();
                    if target.is_empty() || target.len() > MAX_LINK || target.contains(&0) {
                        return Err(Error::Refused(format!(
                            "{path} is a symbolic link to no path a file system can hold (empty, longer than {MAX_LINK} bytes, or with a NUL): rewrite the commit without it"
                        )));
                    }
                    rustix::fs::symlinkat(OsStr::from_bytes(target), dir, name)
                        .map_err(|e| created(e, &path))?;
                    rustix::fs::utimensat(dir, name, &self.times(), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| io_error(e, &path))?;
                }
                0o160000 => {
                    // A submodule: as `git archive`, an empty directory.
                    let sub = self.make_dir(dir, name, &path)?;
                    self.date(&sub, &path)?;
                    if self.submodules.len() < MAX_NOTICES {
                        self.submodules.push(path);
                    } else {
                        self.more_submodules += 1;
                    }
                }
                other => {
                    return Err(Error::Refused(format!(
                        "{path} has the mode {other:o}, no kind of file git knows: rewrite the commit without it"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The blob `id`, counted against the limit by its header before it is read.
    fn blob(&mut self, id: Oid, path: &str, what: &str) -> Result<git2::Blob<'r>, Error> {
        let (size, kind) = match self.odb.read_header(id) {
            Ok(header) => header,
            Err(err) if err.code() == git2::ErrorCode::NotFound => (0, ObjectType::Any),
            Err(err) => return Err(err.into()),
        };
        if kind != ObjectType::Blob {
            return Err(Error::Refused(format!(
                "{path} is a {what} entry that names no file content: rewrite the commit without it"
            )));
        }
        self.bytes = self.bytes.saturating_add(size as u64);
        if self.bytes > self.limits.max_bytes {
            return Err(Error::Refused(format!(
                "the pushed commit's files add up to more than {} bytes, the most a push may send: make them smaller, or have the operator raise --max-push-bytes",
                self.limits.max_bytes
            )));
        }
        Ok(self.repo.find_blob(id)?)
    }

    /// Makes the directory `name` in `dir` and opens it; it must be new.
    fn make_dir(&self, dir: &OwnedFd, name: &OsStr, path: &str) -> Result<OwnedFd, Error> {
        rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)).map_err(|e| created(e, path))?;
        let sub = open_dir(dir, name, path)?;
        rustix::fs::fchmod(&sub, Mode::from_raw_mode(0o755)).map_err(|e| io_error(e, path))?;
        Ok(sub)
    }

    /// Dates an entry at the commit's time, as `git archive` does.
    fn date(&self, fd: impl std::os::fd::AsFd, path: &str) -> Result<(), Error> {
        rustix::fs::futimens(fd, &self.times()).map_err(|e| io_error(e, path))
    }

    fn times(&self) -> Timestamps {
        let time = Timespec {
            tv_sec: self.time,
            tv_nsec: 0,
        };
        Timestamps {
            last_access: time,
            last_modification: time,
        }
    }
}

/// Opens the directory `name` of `dir`, never through a link.
fn open_dir(dir: impl std::os::fd::AsFd, name: &OsStr, path: &str) -> Result<OwnedFd, Error> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::empty()).map_err(|e| io_error(e, path))
}

/// A name a tree entry may have: what git itself would check out.
fn check_name(name: &[u8], parent: &str) -> Result<(), Error> {
    let plain = !name.is_empty()
        && !name.contains(&b'/')
        && !name.contains(&0)
        && name != b"."
        && name != b".."
        && !name.eq_ignore_ascii_case(b".git");
    if plain {
        return Ok(());
    }
    let parent = if parent.is_empty() {
        "the top directory".to_owned()
    } else {
        parent.to_owned()
    };
    Err(Error::Refused(format!(
        "the pushed commit has an entry named {:?} in {parent}, which git never checks out: rewrite the commit without it",
        String::from_utf8_lossy(name)
    )))
}

/// How messages name an entry.
fn shown(prefix: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if prefix.is_empty() {
        name.into_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// An entry could not be created: one of its name already there is the tree's doing.
fn created(err: Errno, path: &str) -> Error {
    if err == Errno::EXIST {
        return Error::Refused(format!(
            "the pushed commit has two entries named {path}: rewrite the commit with one"
        ));
    }
    io_error(err, path)
}

fn io_error(err: Errno, path: &str) -> Error {
    Error::Io(std::io::Error::other(format!(
        "{path}: {}",
        std::io::Error::from(err)
    )))
}

fn parse_oid(commit: &str) -> Option<Oid> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Oid::from_str(commit).ok()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
}
