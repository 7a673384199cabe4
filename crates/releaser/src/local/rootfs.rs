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
//! A layer is hostile input: unpacking and composing are `oci::rootfs`'s, whose rules
//! (plain names, handles never following links, whiteouts of one plain name, devices skipped,
//! setuid and setgid dropped) hold for both. A bad layer fails the deploy with the entry and
//! the reason, and its temporary directory is removed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use domain::{Digest, ImageRef};
use flate2::read::MultiGzDecoder;
use oci::ImageStore;
use oci::rootfs::{merge, unpack};

const TMP_PREFIX: &str = ".unpacking-";

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

#[cfg(test)]
mod tests {
    use super::*;

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
                vec![deep_layer(oci::rootfs::MAX_DEPTH + 1)],
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
