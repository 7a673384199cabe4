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
use domain::AppName;

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

/// The bare repository of `app` under `repos`: `<repos>/<app>.git`. Only a parsed
/// [`AppName`] names one, never a string a caller made.
pub(crate) fn repo_path(repos: &Path, app: &AppName) -> PathBuf {
    repos.join(format!("{}.git", app.as_str()))
}

/// How many commits `upstream` is ahead of `downstream` in the repository at `repo`: the
/// commits reachable from the first and not from the second (`git rev-list --count
/// downstream..upstream`). `None` when that cannot be known: the repository or either
/// commit is missing, or a commit is not a full hexadecimal id.
pub(crate) async fn commits_ahead(
    repo: &Path,
    upstream: &str,
    downstream: &str,
) -> std::io::Result<Option<u32>> {
    let (Some(upstream), Some(downstream)) = (parse_oid(upstream), parse_oid(downstream)) else {
        return Ok(None);
    };
    let path = repo.to_path_buf();
    let ahead = blocking(move || {
        let repo = match Repository::open_bare(&path) {
            Ok(repo) => repo,
            Err(err) if err.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        if repo.find_commit(upstream).is_err() || repo.find_commit(downstream).is_err() {
            return Ok(None);
        }
        let (ahead, _behind) = repo.graph_ahead_behind(upstream, downstream)?;
        Ok(Some(u32::try_from(ahead).unwrap_or(u32::MAX)))
    })
    .await;
    ahead.map_err(|err| match err {
        Error::Io(err) => err,
        other => std::io::Error::other(other.to_string()),
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
    let tree = commit
        .tree()
        .map_err(|e| unreadable(e, "the top directory"))?;
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
                        Err(err) => return Err(unreadable(err, &path)),
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

/// A tree libgit2 cannot parse is the pusher's to fix; any other failure is the platform's.
fn unreadable(err: git2::Error, path: &str) -> Error {
    if err.class() == git2::ErrorClass::Tree {
        return Error::Refused(format!(
            "{path} of the pushed commit is no tree git can read ({}): rewrite the commit",
            err.message()
        ));
    }
    err.into()
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

#[cfg(test)]
mod tests {
    //! Real repositories, made by the `git` command line in temporary directories. The
    //! hostile trees are written as raw tree objects with `git hash-object -t tree
    //! --literally`, which stores any bytes as a tree: git's own commands refuse to make them.

    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::process::{Command, Stdio};

    use super::*;

    const DATE: &str = "1700000000 +0000";

    fn git_command(dir: &Path) -> Command {
        let mut git = Command::new("git");
        git.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Tester")
            .env("GIT_AUTHOR_EMAIL", "tester@example.com")
            .env("GIT_COMMITTER_NAME", "Tester")
            .env("GIT_COMMITTER_EMAIL", "tester@example.com")
            .env("GIT_AUTHOR_DATE", DATE)
            .env("GIT_COMMITTER_DATE", DATE);
        git
    }

    /// Runs git in `dir` with `input` on its stdin; its stdout, trimmed.
    fn git_with(dir: &Path, args: &[&str], input: &[u8]) -> String {
        let mut child = git_command(dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        git_with(dir, args, b"")
    }

    fn unlimited() -> Limits {
        Limits::new(u64::MAX)
    }

    /// Exports `commit` of `repo` into `<dest>/source` without a quarantine.
    fn export_to(
        repo: &Path,
        commit: &str,
        dest: &Path,
        limits: Limits,
    ) -> Result<Exported, Error> {
        export_blocking(
            repo,
            commit,
            None,
            &dest.join("source"),
            limits,
            &CancellationToken::new(),
        )
    }

    /// A bare repository made as the gateway makes it.
    fn bare(dir: &Path) -> PathBuf {
        let repo = dir.join("app.git");
        create_blocking(&repo).unwrap();
        repo
    }

    /// Every entry under `root`, sorted: its path, kind, mode, content or link target, and
    /// modification time.
    fn listing(root: &Path) -> Vec<(PathBuf, &'static str, u32, Vec<u8>, i64)> {
        let mut found = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let (kind, data) = if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(&path).unwrap();
                    ("link", target.as_os_str().as_bytes().to_vec())
                } else if meta.is_dir() {
                    todo.push(path.clone());
                    ("dir", Vec::new())
                } else {
                    ("file", std::fs::read(&path).unwrap())
                };
                let mode = if kind == "link" {
                    0
                } else {
                    meta.permissions().mode() & 0o7777
                };
                let relative = path.strip_prefix(root).unwrap().to_path_buf();
                found.push((relative, kind, mode, data, meta.mtime()));
            }
        }
        found.sort();
        found
    }

    #[tokio::test]
    async fn commits_ahead_counts_in_the_repository_and_knows_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let repos = dir.path().join("repos");
        std::fs::create_dir(&repos).unwrap();
        let app = AppName::parse("demo-staging").unwrap();
        let repo = repo_path(&repos, &app);
        assert_eq!(repo, repos.join("demo-staging.git"));
        create_blocking(&repo).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        let mut commits = Vec::new();
        for n in 1..=3 {
            std::fs::write(work.join("file"), format!("{n}\n")).unwrap();
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "--quiet", "-m", &format!("commit {n}")]);
            commits.push(git(&work, &["rev-parse", "HEAD"]));
        }
        git(&work, &["push", "--quiet", repo.to_str().unwrap(), "main"]);
        let (first, third) = (commits[0].as_str(), commits[2].as_str());

        assert_eq!(commits_ahead(&repo, third, first).await.unwrap(), Some(2));
        assert_eq!(commits_ahead(&repo, first, third).await.unwrap(), Some(0));
        assert_eq!(commits_ahead(&repo, third, third).await.unwrap(), Some(0));
        // Unknown: a commit the repository lacks, a malformed one, a missing repository.
        let absent = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(commits_ahead(&repo, third, absent).await.unwrap(), None);
        assert_eq!(commits_ahead(&repo, absent, first).await.unwrap(), None);
        assert_eq!(commits_ahead(&repo, "HEAD", first).await.unwrap(), None);
        assert_eq!(commits_ahead(&repo, "../../x", first).await.unwrap(), None);
        let other = repo_path(&repos, &AppName::parse("demo").unwrap());
        assert_eq!(commits_ahead(&other, third, first).await.unwrap(), None);
    }

    #[test]
    fn a_new_repository_is_what_git_init_made() {
        let dir = tempfile::tempdir().unwrap();
        let ours = bare(dir.path());
        create_blocking(&ours).expect("creating it again leaves it be");
        git(
            dir.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                "theirs.git",
            ],
        );
        for repo in ["app.git", "theirs.git"] {
            let repo = dir.path().join(repo);
            let config = git(&repo, &["config", "--local", "--list"]);
            let mut config: Vec<&str> = config.lines().collect();
            config.sort_unstable();
            assert_eq!(
                config,
                [
                    "core.bare=true",
                    "core.filemode=true",
                    "core.repositoryformatversion=0"
                ],
                "{}",
                repo.display()
            );
            assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
        }
    }

    #[test]
    fn an_export_matches_git_archive() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        let write = |path: &str, content: &[u8], mode: u32| {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("README.md", b"# demo\n", 0o644);
        write("bin/run", b"#!/bin/sh\necho hi\n", 0o755);
        write("src/a/b/deep.txt", b"deep\n", 0o600);
        write("empty", b"", 0o644);
        write("-dash and space ünïcode", b"odd name\n", 0o644);
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, work.join(name)).unwrap();
        };
        link("README.md", "to-file");
        link("src", "to-dir");
        link("nowhere/at/all", "dangling");
        link("/etc/passwd", "absolute");
        link("../../..", "src/a/escape");
        let odd = OsStr::from_bytes(b"not-utf8-\xff");
        std::fs::write(work.join(odd), b"bytes\n").unwrap();
        git(&work, &["add", "-A"]);
        let some_commit = "1234567890123456789012345678901234567890";
        git(
            &work,
            &[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("160000,{some_commit},vendor/lib"),
            ],
        );
        git(&work, &["commit", "--quiet", "-m", "all kinds"]);
        let commit = git(&work, &["rev-parse", "HEAD"]);
        let repo = bare(dir.path());
        git(&work, &["push", "--quiet", repo.to_str().unwrap(), "main"]);

        let ours = dir.path().join("ours");
        std::fs::create_dir(&ours).unwrap();
        let exported = export_to(&repo, &commit, &ours, unlimited()).unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        let archived = Command::new("sh")
            .arg("-c")
            .arg(r#"git --git-dir "$1" -c tar.umask=022 archive --format=tar "$2" | tar -x -p -f - -C "$3""#)
            .args(["sh", repo.to_str().unwrap(), &commit, theirs.to_str().unwrap()])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap();
        assert!(archived.success());

        let ours = listing(&ours.join("source"));
        assert_eq!(ours, listing(&theirs));
        let find = |name: &str| ours.iter().find(|e| e.0 == Path::new(name)).unwrap();
        assert_eq!(find("bin/run").2, 0o755);
        assert_eq!(find("src/a/b/deep.txt").2, 0o644);
        assert_eq!(
            (find("src/a/escape").1, &find("src/a/escape").3[..]),
            ("link", &b"../../.."[..])
        );
        assert_eq!((find("vendor/lib").1, find("vendor/lib").2), ("dir", 0o755));
        assert_eq!(find("README.md").4, 1_700_000_000);
        assert_eq!(ours.len(), 17, "{ours:#?}");
        assert_eq!(
            exported.notices,
            [
                "-----> vendor/lib is a submodule: Slipway does not fetch submodules, so the build sees an empty directory"
            ]
        );
    }

    /// Makes `fifo` with mkfifo(1).
    fn fifo(path: &Path) {
        assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    }

    #[test]
    fn a_pushed_commit_is_read_from_the_quarantine_while_the_hook_runs() {
        let dir = tempfile::tempdir().unwrap();
        let repo = bare(dir.path());
        let (told, answer) = (dir.path().join("told"), dir.path().join("answer"));
        fifo(&told);
        fifo(&answer);
        // The hook tells the test git's quarantine, then waits for the test's verdict.
        let hook = repo.join("hooks").join("pre-receive");
        std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\necho \"$GIT_QUARANTINE_PATH\" > '{}'\nread verdict < '{}'\ntest \"$verdict\" = accept\n",
                told.display(),
                answer.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(work.join("Procfile"), "web: ./run\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "--quiet", "-m", "one"]);
        let commit = git(&work, &["rev-parse", "HEAD"]);

        let push = |verdict: &str| {
            let pushing = git_command(&work)
                .args(["push", "--quiet", repo.to_str().unwrap(), "main"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut quarantine = String::new();
            std::fs::File::open(&told)
                .unwrap()
                .read_to_string(&mut quarantine)
                .unwrap();
            let quarantine = quarantine.trim().to_owned();
            let out = dir.path().join(format!("out-{verdict}"));
            std::fs::create_dir(&out).unwrap();
            let exported = export_blocking(
                &repo,
                &commit,
                Some(&quarantine),
                &out.join("source"),
                unlimited(),
                &CancellationToken::new(),
            );
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let reached = rt.block_on(reachable(&repo, &commit));
            let without = export_to(&repo, &commit, &dir.path().join("without"), unlimited());
            std::fs::write(&answer, format!("{verdict}\n")).unwrap();
            let pushed = pushing.wait_with_output().unwrap().status.success();
            (
                exported,
                reached,
                without.is_err(),
                pushed,
                out.join("source"),
            )
        };

        let (exported, reached, without_fails, pushed, out) = push("reject");
        exported.expect("the export reads the quarantine");
        assert_eq!(
            std::fs::read(out.join("Procfile")).unwrap(),
            b"web: ./run\n"
        );
        assert!(!reached, "no ref reaches a commit in quarantine");
        assert!(
            without_fails,
            "outside the quarantine, the commit is not there"
        );
        assert!(!pushed, "the hook rejected it");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(
            !rt.block_on(reachable(&repo, &commit)),
            "git dropped the quarantine"
        );
        assert!(!rt.block_on(points_at(&repo, "refs/heads/main", &commit)));

        let (exported, _, _, pushed, _) = push("accept");
        exported.unwrap();
        assert!(pushed);
        assert!(rt.block_on(reachable(&repo, &commit)));
        assert!(rt.block_on(points_at(&repo, "refs/heads/main", &commit)));
        assert!(!rt.block_on(points_at(&repo, "refs/heads/master", &commit)));
        assert!(!rt.block_on(reachable(&repo, "not a commit")));
        assert!(!rt.block_on(reachable(&repo, &"0".repeat(40))));
    }

    #[test]
    fn only_a_quarantine_git_makes_in_the_repository_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let repo = bare(dir.path());
        std::fs::create_dir(repo.join("objects/tmp_objdir-incoming-Ab1_x")).unwrap();
        let elsewhere = dir.path().join("tmp_objdir-incoming-x");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, repo.join("objects/tmp_objdir-incoming-link"))
            .unwrap();
        let found = |reported: &str| quarantine_dir(&repo, reported).map_err(|e| e.to_string());
        assert_eq!(
            found("/somewhere/else/tmp_objdir-incoming-Ab1_x").unwrap(),
            repo.join("objects/tmp_objdir-incoming-Ab1_x"),
            "only the name is taken"
        );
        for bad in [
            "/etc",
            "tmp_objdir-incoming-",
            "/x/tmp_objdir-incoming-Ab1_x/..",
            "tmp_objdir-incoming-a.b",
            "tmp_objdir-incoming-missing",
            "tmp_objdir-incoming-link",
        ] {
            assert!(found(bad).is_err(), "{bad}");
        }
    }

    /// Writes a raw tree object of `entries` (mode, name, object id) into `repo`.
    fn raw_tree(repo: &Path, entries: &[(&str, &[u8], &str)]) -> String {
        let mut bytes = Vec::new();
        for (mode, name, id) in entries {
            bytes.extend_from_slice(mode.as_bytes());
            bytes.push(b' ');
            bytes.extend_from_slice(name);
            bytes.push(0);
            bytes.extend_from_slice(&hex::decode(id).unwrap());
        }
        git_with(
            repo,
            &["hash-object", "-t", "tree", "-w", "--literally", "--stdin"],
            &bytes,
        )
    }

    fn blob(repo: &Path, content: &[u8]) -> String {
        git_with(repo, &["hash-object", "-w", "--stdin"], content)
    }

    fn commit_of(repo: &Path, tree: &str) -> String {
        git(repo, &["commit-tree", tree, "-m", "hostile"])
    }

    #[test]
    fn a_hostile_tree_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let repo = bare(dir.path());
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("target"), "kept\n").unwrap();
        let outside_str = outside.to_str().unwrap();
        let file = blob(&repo, b"pwned\n");
        let to_outside = blob(&repo, outside_str.as_bytes());
        let to_target = blob(&repo, format!("{outside_str}/target").as_bytes());
        let inner = raw_tree(&repo, &[("100644", b"pwned", &file)]);
        let empty_link = blob(&repo, b"");
        let nul_link = blob(&repo, b"a\0b");
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "dot-dot",
                raw_tree(&repo, &[("40000", b"..", &inner)]),
                r#"named "..""#,
            ),
            (
                "dot",
                raw_tree(&repo, &[("100644", b".", &file)]),
                r#"named ".""#,
            ),
            (
                "slash",
                raw_tree(&repo, &[("100644", b"a/pwned", &file)]),
                r#"named "a/pwned""#,
            ),
            // libgit2 does not parse a tree with an empty name.
            (
                "empty name",
                raw_tree(&repo, &[("100644", b"", &file)]),
                "the top directory of the pushed commit is no tree git can read",
            ),
            (
                "dot git",
                raw_tree(&repo, &[("40000", b".GIT", &inner)]),
                r#"named ".GIT""#,
            ),
            (
                "deeper dot-dot",
                {
                    let bad = raw_tree(&repo, &[("100644", b"..", &file)]);
                    raw_tree(&repo, &[("40000", b"sub", &bad)])
                },
                r#"named ".." in sub"#,
            ),
            (
                "a link, then a directory of its name",
                raw_tree(
                    &repo,
                    &[("120000", b"evil", &to_outside), ("40000", b"evil", &inner)],
                ),
                "two entries named evil",
            ),
            (
                "a link, then a file of its name",
                raw_tree(
                    &repo,
                    &[("120000", b"evil", &to_target), ("100644", b"evil", &file)],
                ),
                "two entries named evil",
            ),
            (
                "a file twice",
                raw_tree(
                    &repo,
                    &[("100644", b"twice", &file), ("100755", b"twice", &file)],
                ),
                "two entries named twice",
            ),
            (
                "an empty link",
                raw_tree(&repo, &[("120000", b"l", &empty_link)]),
                "l is a symbolic link to no path",
            ),
            (
                "a link with a NUL",
                raw_tree(&repo, &[("120000", b"l", &nul_link)]),
                "l is a symbolic link to no path",
            ),
            (
                "a file that is a tree",
                raw_tree(&repo, &[("100644", b"f", &inner)]),
                "f is a file entry that names no file content",
            ),
            (
                "a directory that is a file",
                raw_tree(&repo, &[("40000", b"d", &file)]),
                "d is a directory entry that names no directory",
            ),
        ];
        for (case, tree, expected) in cases {
            let commit = commit_of(&repo, &tree);
            let out = dir.path().join("out");
            std::fs::create_dir(&out).unwrap();
            let refused = export_to(&repo, &commit, &out, unlimited());
            match refused {
                Err(Error::Refused(message)) => {
                    assert!(message.contains(expected), "{case}: {message}")
                }
                other => panic!("{case}: {other:?}"),
            }
            assert!(
                !out.join("source").exists(),
                "{case}: the export is removed"
            );
            std::fs::remove_dir(&out).unwrap();
            assert_eq!(
                listing(&outside).len(),
                1,
                "{case}: nothing written outside"
            );
            assert_eq!(
                std::fs::read(outside.join("target")).unwrap(),
                b"kept\n",
                "{case}"
            );
        }
    }

    #[test]
    fn an_export_stays_within_its_limits() {
        let dir = tempfile::tempdir().unwrap();
        let repo = bare(dir.path());
        let ten = blob(&repo, b"0123456789");
        let link = blob(&repo, b"0123456789");
        // Ten names for one file, ten names for that directory, and so on: 1,110 entries
        // from a few objects.
        let mut tree = raw_tree(&repo, &[]);
        let mut level = ("100644", ten.clone());
        for _ in 0..3 {
            let names: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
            let entries: Vec<(&str, &[u8], &str)> = names
                .iter()
                .map(|n| (level.0, n.as_bytes(), level.1.as_str()))
                .collect();
            tree = raw_tree(&repo, &entries);
            level = ("40000", tree.clone());
        }
        let bomb = commit_of(&repo, &tree);
        let one_file = commit_of(&repo, &raw_tree(&repo, &[("100644", b"f", &ten)]));
        let file_and_link = commit_of(
            &repo,
            &raw_tree(&repo, &[("100644", b"f", &ten), ("120000", b"l", &link)]),
        );
        let mut deep = raw_tree(&repo, &[("100644", b"f", &ten)]);
        for _ in 0..3 {
            deep = raw_tree(&repo, &[("40000", b"d", &deep)]);
        }
        let deep = commit_of(&repo, &deep);

        let limits = |max_bytes, max_entries, max_depth| Limits {
            max_bytes,
            max_entries,
            max_depth,
        };
        let cases = [
            (&bomb, limits(u64::MAX, 1_110, 10), None),
            (
                &bomb,
                limits(u64::MAX, 1_109, 10),
                Some("more than 1109 files and directories"),
            ),
            (&bomb, limits(10_000, 2_000, 10), None),
            (
                &bomb,
                limits(9_999, 2_000, 10),
                Some("more than 9999 bytes"),
            ),
            (&one_file, limits(10, 10, 10), None),
            (&one_file, limits(9, 10, 10), Some("more than 9 bytes")),
            (
                &file_and_link,
                limits(19, 10, 10),
                Some("more than 19 bytes"),
            ),
            (&file_and_link, limits(20, 10, 10), None),
            (&deep, limits(u64::MAX, 10, 4), None),
            (
                &deep,
                limits(u64::MAX, 10, 3),
                Some("d/d/d/f is nested more than 3 directories deep"),
            ),
        ];
        for (i, (commit, limits, expected)) in cases.into_iter().enumerate() {
            let out = dir.path().join(format!("out-{i}"));
            std::fs::create_dir(&out).unwrap();
            let result = export_to(&repo, commit, &out, limits);
            match (result, expected) {
                (Ok(_), None) => assert!(out.join("source").is_dir()),
                (Err(Error::Refused(message)), Some(expected)) => {
                    assert!(message.contains(expected), "case {i}: {message}");
                    assert!(!out.join("source").exists(), "case {i}");
                }
                (other, _) => panic!("case {i}: {other:?}, expected {expected:?}"),
            }
        }
        assert_eq!(listing(&dir.path().join("out-0/source")).len(), 1_110);
    }

    #[tokio::test]
    async fn an_export_runs_off_the_async_threads_and_stops_when_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let repo = bare(dir.path());
        let file = blob(&repo, b"web: ./run\n");
        let commit = commit_of(&repo, &raw_tree(&repo, &[("100644", b"Procfile", &file)]));
        let cancel = CancellationToken::new();
        let env = BTreeMap::new();
        let dest = dir.path().join("source");
        export(&repo, &commit, &env, &dest, unlimited(), &cancel)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dest.join("Procfile")).unwrap(),
            b"web: ./run\n"
        );
        let again = export(&repo, &commit, &env, &dest, unlimited(), &cancel).await;
        assert!(again.is_err(), "the destination must be new");
        assert!(
            dest.join("Procfile").exists(),
            "and one that was there is left be"
        );
        cancel.cancel();
        let dest = dir.path().join("cancelled");
        let cancelled = export(&repo, &commit, &env, &dest, unlimited(), &cancel).await;
        assert!(matches!(cancelled, Err(Error::Refused(m)) if m.contains("cancelled")));
        assert!(!dest.exists());
    }
}
