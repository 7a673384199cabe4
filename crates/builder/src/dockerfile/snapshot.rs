//! What a `RUN` changed on its root file system: a walk before and one after (each entry's
//! kind, mode, owner, size, inode, mtime and ctime, by `lstat`, through [`Tree`] so no link
//! is followed), compared entry by entry, kaniko-style. ctime moves on every write, chmod and
//! rename and no process can set it, so a file rewritten with its old mtime is still seen.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use oci::{Change, Changes};

use crate::BuildError;
use crate::tenant_fs::{Kind, Tree};

/// The most entries a root file system may have for a RUN to be diffed: each costs the
/// platform about 150 bytes per walk, two walks per RUN.
const MAX_ENTRIES: usize = 1_000_000;

/// Top-level names never part of a layer: where the sandbox mounts `/proc` and `/dev`.
const MOUNT_POINTS: [&str; 3] = ["proc", "dev", "sys"];

/// An entry as a walk saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    ino: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// A directory's entries as a walk saw them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot(BTreeMap<OsString, (Seen, Option<Snapshot>)>);

/// Walks `root`. Blocking.
pub(crate) fn take(root: &Tree) -> Result<Snapshot, BuildError> {
    let mut count = 0;
    walk(root, true, &mut count)
}

fn walk(dir: &Tree, top: bool, count: &mut usize) -> Result<Snapshot, BuildError> {
    let mut entries = BTreeMap::new();
    for (name, kind) in dir.entries()? {
        if top && MOUNT_POINTS.iter().any(|m| name == *m) {
            continue;
        }
        *count += 1;
        if *count > MAX_ENTRIES {
            return Err(BuildError::TooManyEntries(
                "the image's file system".to_owned(),
                MAX_ENTRIES,
            ));
        }
        let meta = dir.metadata(Path::new(&name))?;
        let seen = Seen {
            kind,
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            ino: meta.ino(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        let below = match kind {
            Kind::Dir => match dir.dir(Path::new(&name))? {
                Some(sub) => Some(walk(&sub, false, count)?),
                None => None,
            },
            _ => None,
        };
        entries.insert(name, (seen, below));
    }
    Ok(Snapshot(entries))
}

/// What changed from `before` to `after`: new and changed entries, and removed ones.
pub(crate) fn diff(before: &Snapshot, after: &Snapshot) -> Changes {
    let mut changes = BTreeMap::new();
    for (name, (seen, below)) in &after.0 {
        let change = match before.0.get(name) {
            None => Some(Change::Whole),
            Some((old, _)) if old.kind != seen.kind => Some(Change::Whole),
            Some((old, old_below)) => match (old_below, below) {
                (Some(old_below), Some(below)) => {
                    let inner = diff(old_below, below);
                    let own = (old.mode, old.uid, old.gid) != (seen.mode, seen.uid, seen.gid);
                    (own || !inner.is_empty()).then_some(Change::Within(inner))
                }
                _ => (old != seen).then_some(Change::Whole),
            },
        };
        if let Some(change) = change {
            changes.insert(name.clone(), change);
        }
    }
    for name in before.0.keys() {
        if !after.0.contains_key(name) {
            changes.insert(name.clone(), Change::Removed);
        }
    }
    Changes(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_names_what_was_added_changed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["usr/bin", "etc", "proc", "keep"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("usr/bin/tool"), "v1").unwrap();
        std::fs::write(root.join("etc/old"), "x").unwrap();
        std::fs::write(root.join("keep/same"), "same").unwrap();
        let tree = Tree::open(root, "").unwrap();
        let before = take(&tree).unwrap();
        assert!(diff(&before, &take(&tree).unwrap()).is_empty());

        // Same size, mtime put back: ctime still moves.
        let mtime = std::fs::metadata(root.join("usr/bin/tool"))
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("usr/bin/tool"), "v2").unwrap();
        std::fs::File::options()
            .write(true)
            .open(root.join("usr/bin/tool"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        std::fs::remove_file(root.join("etc/old")).unwrap();
        std::fs::create_dir_all(root.join("app/sub")).unwrap();
        std::fs::write(root.join("proc/ignored"), "x").unwrap();
        let changes = diff(&before, &take(&tree).unwrap());
        let within = |pairs: Vec<(&str, Change)>| {
            Change::Within(Changes(
                pairs
                    .into_iter()
                    .map(|(n, c)| (OsString::from(n), c))
                    .collect(),
            ))
        };
        assert_eq!(
            changes,
            Changes(
                [
                    (OsString::from("app"), Change::Whole),
                    (
                        OsString::from("etc"),
                        within(vec![("old", Change::Removed)])
                    ),
                    (
                        OsString::from("usr"),
                        within(vec![("bin", within(vec![("tool", Change::Whole)]))])
                    ),
                ]
                .into()
            )
        );
    }
}
