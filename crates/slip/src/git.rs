//! The git work tree `slip` runs in: its `slipway` remote, and which app that remote names.

use std::io;
use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// The remote `slip create` adds and `git push slipway main` uses.
pub(crate) const REMOTE: &str = "slipway";

/// The git work tree in a directory, through the `git` binary.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
}

impl Git {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Git {
        Git { dir: dir.into() }
    }

    /// Git in the current directory.
    pub(crate) fn here() -> Git {
        Git::new(".")
    }

    /// Runs git; `None` when git is not installed.
    fn run(&self, args: &[&str]) -> anyhow::Result<Option<Output>> {
        match Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .output()
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("cannot run git"),
        }
    }

    /// Whether the directory is inside a git work tree (false when git is missing).
    pub(crate) fn in_work_tree(&self) -> anyhow::Result<bool> {
        let out = self.run(&["rev-parse", "--is-inside-work-tree"])?;
        Ok(out.is_some_and(|o| o.status.success() && o.stdout.trim_ascii() == b"true"))
    }

    /// The URL of a remote; `None` outside a work tree, without git, or without that remote.
    pub(crate) fn remote_url(&self, name: &str) -> anyhow::Result<Option<String>> {
        let Some(out) = self.run(&["remote", "get-url", name])? else {
            return Ok(None);
        };
        if !out.status.success() {
            return Ok(None);
        }
        let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((!url.is_empty()).then_some(url))
    }

    pub(crate) fn add_remote(&self, name: &str, url: &str) -> anyhow::Result<()> {
        self.check(&["remote", "add", name, url])
    }

    pub(crate) fn remove_remote(&self, name: &str) -> anyhow::Result<()> {
        self.check(&["remote", "remove", name])
    }

    /// Runs git with the terminal's input and output (its progress and the remote's lines
    /// reach the user as they come), and returns how it exited.
    pub(crate) fn run_attached(&self, args: &[&str]) -> anyhow::Result<std::process::ExitStatus> {
        match Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .status()
        {
            Ok(status) => Ok(status),
            Err(e) if e.kind() == io::ErrorKind::NotFound => bail!("git is not installed"),
            Err(e) => Err(e).context("cannot run git"),
        }
    }

    fn check(&self, args: &[&str]) -> anyhow::Result<()> {
        let Some(out) = self.run(args)? else {
            bail!("git is not installed");
        };
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let reason = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("failed");
            bail!(
                "git {}: {}",
                args.join(" "),
                reason.trim().trim_start_matches("error: ")
            );
        }
        Ok(())
    }

    /// The app the `slipway` remote points at.
    pub(crate) fn app(&self) -> anyhow::Result<Option<String>> {
        Ok(self
            .remote_url(REMOTE)?
            .as_deref()
            .and_then(app_from_remote))
    }
}

/// The app a git URL names: the last segment of its path, without `.git`.
/// `ssh://git@127.0.0.1:2222/demo.git` and `git@host:demo.git` both name `demo`.
pub(crate) fn app_from_remote(url: &str) -> Option<String> {
    let url = url.trim();
    let path = if let Some((_, rest)) = url.split_once("://") {
        &rest[rest.find('/')?..]
    } else if let Some((host, path)) = url.split_once(':')
        && !host.contains('/')
    {
        // scp-like `user@host:path`
        path
    } else {
        url
    };
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    let name = last.strip_suffix(".git").unwrap_or(last);
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_from_remote_urls() {
        let cases = [
            ("ssh://git@127.0.0.1:2222/demo.git", Some("demo")),
            ("ssh://git@127.0.0.1:2222/demo", Some("demo")),
            ("ssh://git@slipway.example.com/apps/demo.git/", Some("demo")),
            ("git@host:demo.git", Some("demo")),
            ("git@host:demo", Some("demo")),
            ("git@host:team/demo-2.git", Some("demo-2")),
            ("https://slipway.example.com/demo.git\n", Some("demo")),
            ("/srv/git/demo.git", Some("demo")),
            ("../repos/demo.git", Some("demo")),
            ("ssh://git@host:2222/", None),
            ("ssh://git@host:2222", None),
            ("git@host:.git", None),
            ("git@host:", None),
        ];
        for (url, want) in cases {
            assert_eq!(app_from_remote(url).as_deref(), want, "{url:?}");
        }
    }

    /// Against the real git binary, in a fresh repository.
    #[test]
    fn finds_the_app_of_the_slipway_remote() {
        let dir = tempfile::tempdir().unwrap();
        let git = Git::new(dir.path());
        assert!(!git.in_work_tree().unwrap());
        assert_eq!(git.app().unwrap(), None);

        let init = Command::new("git")
            .arg("init")
            .arg("-q")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(init.success());
        assert!(git.in_work_tree().unwrap());
        assert_eq!(git.app().unwrap(), None);

        git.add_remote(REMOTE, "ssh://git@127.0.0.1:2222/demo.git")
            .unwrap();
        assert_eq!(git.app().unwrap().as_deref(), Some("demo"));
        let again = git
            .add_remote(REMOTE, "ssh://git@127.0.0.1:2222/other.git")
            .unwrap_err();
        assert!(
            again.to_string().starts_with("git remote add slipway"),
            "{again}"
        );

        git.remove_remote(REMOTE).unwrap();
        assert_eq!(git.remote_url(REMOTE).unwrap(), None);
    }
}
