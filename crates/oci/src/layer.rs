//! Reproducible layers: a tar of a directory with its entries sorted, owners zeroed and times
//! fixed, so the same tree always gives the same bytes, compressed as a series of gzip
//! members of fixed size, each compressed on its own thread. Concatenated members are one
//! valid gzip stream (RFC 1952), so every OCI client reads it, and the fixed member size
//! keeps the digest independent of the number of threads.
//!
//! The tree is walked through a [`Dir`], a directory handle the caller provides: this module
//! opens no path itself, so a tree someone else can write is walked as the caller's handle
//! allows (the builder's never follows a link).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use domain::Digest;
use sha2::{Digest as _, Sha256};

/// The size of each gzip member, compressed independently.
pub const MEMBER: usize = 4 * 1024 * 1024;

/// What an entry of a [`Dir`] is, by `lstat`: a link is a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// Devices, fifos, sockets: left out of layers.
    Other,
}

/// A directory held open, whose entries a layer is made of. Every name given to its methods
/// is one plain name of [`Dir::entries`]; implementations reach it through the handle, never
/// by a joined path, and never follow a link.
pub trait Dir: Sized {
    /// The entries, sorted by name, with what each is.
    fn entries(&self) -> std::io::Result<Vec<(OsString, EntryKind)>>;
    /// The entry's own metadata (a link's, not its target's).
    fn metadata(&self, name: &OsStr) -> std::io::Result<std::fs::Metadata>;
    /// The regular file `name`, opened for reading.
    fn open_file(&self, name: &OsStr) -> std::io::Result<std::fs::File>;
    /// The target of the link `name`, as written.
    fn read_link(&self, name: &OsStr) -> std::io::Result<PathBuf>;
    /// The directory `name`, held open.
    fn dir(&self, name: &OsStr) -> std::io::Result<Self>;
}

/// A compressed layer, in a temporary file until the store takes it, and the two digests
/// that name it.
#[derive(Debug)]
pub struct Layer {
    pub file: tempfile::TempPath,
    /// The size of the compressed layer.
    pub size: u64,
    /// sha256 of the compressed bytes: the blob's name.
    pub digest: Digest,
    /// sha256 of the uncompressed tar: what the image config lists.
    pub diff_id: Digest,
    /// The size of the uncompressed tar.
    pub tar_size: u64,
}

/// Tars `dir` as `prefix/...`, reproducibly, into `tmp`, then compresses it there. Memory
/// stays bounded by a few gzip members whatever the size of the tree. Blocking.
pub fn layer_of(dir: &impl Dir, prefix: &str, tmp: &Path) -> crate::Result<Layer> {
    write_layer(tmp, |mut out| write_tar(dir, prefix, &mut out))
}

/// The tar `write` writes, in a temporary file of `tmp`, hashed, then compressed there.
fn write_layer(
    tmp: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> crate::Result<Layer> {
    let tar = tempfile::NamedTempFile::new_in(tmp)?;
    let mut hashing = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, tar.as_file()));
    write(&mut hashing)?;
    let (diff_id, tar_size) = hashing.finish()?;
    let compressed = tempfile::NamedTempFile::new_in(tmp)?;
    let mut out = Hashing::new(std::io::BufWriter::with_capacity(
        1 << 20,
        compressed.as_file(),
    ));
    compress_stream(tar.reopen()?, &mut out)?;
    let (digest, size) = out.finish()?;
    Ok(Layer {
        file: compressed.into_temp_path(),
        size,
        digest,
        diff_id,
        tar_size,
    })
}

/// The diff_id and size of the tar [`layer_of`] would make of `dir` at `prefix`: the same
/// walk, hashed as it streams, with no file written and nothing compressed. Blocking.
pub fn diff_id_of(dir: &impl Dir, prefix: &str) -> std::io::Result<(Digest, u64)> {
    let mut hashing = Hashing::new(std::io::sink());
    write_tar(dir, prefix, &mut hashing)?;
    hashing.finish()
}

/// A tar of `dir` under `prefix`, in memory (for tests and small trees).
pub fn reproducible_tar(dir: &impl Dir, prefix: &str) -> std::io::Result<Vec<u8>> {
    let mut tar = Vec::new();
    write_tar(dir, prefix, &mut tar)?;
    Ok(tar)
}

/// Writes a tar of `dir` under `prefix`: entries in byte order of their paths, ownership and
/// times fixed (tar's deterministic header mode), symlinks kept as links; devices, fifos and
/// sockets are left out.
fn write_tar(dir: &impl Dir, prefix: &str, out: &mut impl Write) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let prefix = prefix.trim_matches('/');
    // The prefix's own directories first, so the layer is complete on its own.
    let mut path = PathBuf::new();
    for part in Path::new(prefix).components() {
        path.push(part);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(DETERMINISTIC_MTIME);
        header.set_size(0);
        builder.append_data(&mut header, &path, std::io::empty())?;
    }
    append_tree(&mut builder, dir, Path::new(prefix))?;
    builder.finish()
}

/// tar's deterministic mode writes this mtime; the prefix directories use it too.
const DETERMINISTIC_MTIME: u64 = 1_153_704_088;

/// Appends `dir`'s entries at `at`, depth first in name order (the order of sorted paths).
fn append_tree<D: Dir>(
    builder: &mut tar::Builder<impl Write>,
    dir: &D,
    at: &Path,
) -> std::io::Result<()> {
    for (name, kind) in dir.entries()? {
        let path = at.join(&name);
        if kind == EntryKind::Other {
            continue;
        }
        let meta = dir.metadata(&name)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        match kind {
            EntryKind::Dir => {
                builder.append_data(&mut header, &path, std::io::empty())?;
                append_tree(builder, &dir.dir(&name)?, &path)?;
            }
            EntryKind::File | EntryKind::Symlink => {
                append_leaf(builder, dir, &name, kind, &meta, &mut header, &path)?;
            }
            EntryKind::Other => {}
        }
    }
    Ok(())
}

/// Appends the file or link `name` of `dir` at `path`, its `header` filled in from `meta`.
fn append_leaf<D: Dir>(
    builder: &mut tar::Builder<impl Write>,
    dir: &D,
    name: &OsStr,
    kind: EntryKind,
    meta: &std::fs::Metadata,
    header: &mut tar::Header,
    path: &Path,
) -> std::io::Result<()> {
    if kind == EntryKind::Symlink {
        let target = dir.read_link(name)?;
        header.set_size(0);
        return builder.append_link(header, path, target);
    }
    let file = dir.open_file(name)?;
    // Exactly the size the header says, even if the file changed meanwhile.
    let size = meta.len();
    let data = file.take(size).chain(std::io::repeat(0)).take(size);
    builder.append_data(header, path, data)
}

/// Which entries of a tree a layer holds, by name, directory by directory: a Dockerfile
/// step's layer is what the step changed, not the whole tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes(pub std::collections::BTreeMap<OsString, Change>);

/// What a layer holds of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The entry, and all beneath it if it is a directory.
    Whole,
    /// The directory itself and, beneath it, only these.
    Within(Changes),
    /// Gone: a `.wh.<name>` whiteout hides it in the layers below.
    Removed,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A layer of `changes` of `dir` (every entry when `None`), made in `tmp`, in the header mode
/// of a Dockerfile's layers: owners root and times fixed like [`layer_of`]'s, but every mode
/// bit kept as it is on disk (setuid, setgid and sticky included), since an image built from
/// a Dockerfile may rely on them. Blocking.
pub fn changes_layer(
    dir: &impl Dir,
    changes: Option<&Changes>,
    tmp: &Path,
) -> crate::Result<Layer> {
    write_layer(tmp, |out| {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        append_changes(&mut builder, dir, Path::new(""), changes)?;
        builder.finish()
    })
}

/// Appends `changes` of `dir` (everything when `None`) at `at`, in name order.
fn append_changes<D: Dir>(
    builder: &mut tar::Builder<impl Write>,
    dir: &D,
    at: &Path,
    changes: Option<&Changes>,
) -> std::io::Result<()> {
    let names: Vec<(OsString, Option<&Change>)> = match changes {
        None => dir.entries()?.into_iter().map(|(n, _)| (n, None)).collect(),
        Some(changes) => changes
            .0
            .iter()
            .map(|(n, c)| (n.clone(), Some(c)))
            .collect(),
    };
    let kinds: std::collections::BTreeMap<OsString, EntryKind> =
        dir.entries()?.into_iter().collect();
    for (name, change) in names {
        let path = at.join(&name);
        if let Some(Change::Removed) = change {
            let mut whiteout = OsString::from(".wh.");
            whiteout.push(&name);
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_mtime(DETERMINISTIC_MTIME);
            header.set_size(0);
            builder.append_data(&mut header, at.join(whiteout), std::io::empty())?;
            continue;
        }
        let Some(&kind) = kinds.get(&name) else {
            continue;
        };
        if kind == EntryKind::Other {
            continue;
        }
        let meta = dir.metadata(&name)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        header.set_mode(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777);
        match kind {
            EntryKind::Dir => {
                builder.append_data(&mut header, &path, std::io::empty())?;
                let within = match change {
                    Some(Change::Within(within)) => Some(within),
                    _ => None,
                };
                append_changes(builder, &dir.dir(&name)?, &path, within)?;
            }
            EntryKind::File | EntryKind::Symlink => {
                append_leaf(builder, dir, &name, kind, &meta, &mut header, &path)?;
            }
            EntryKind::Other => {}
        }
    }
    Ok(())
}

/// Gzips `input` into `output` as fixed-size members, a batch of them compressed in
/// parallel at a time, written in order.
pub fn compress_stream(mut input: impl Read, output: &mut impl Write) -> std::io::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut wrote_any = false;
    loop {
        let mut chunks = Vec::with_capacity(threads);
        for _ in 0..threads {
            let chunk = read_chunk(&mut input, MEMBER)?;
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        if chunks.is_empty() {
            break;
        }
        let members: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| scope.spawn(move || gzip(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("compression does not panic"))
                .collect()
        });
        for member in &members {
            output.write_all(member)?;
        }
        wrote_any = true;
    }
    if !wrote_any {
        output.write_all(&gzip(&[]))?;
    }
    Ok(())
}

/// Gzips `tar` in memory, as [`compress_stream`] does.
pub fn compress(tar: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    compress_stream(tar, &mut out).expect("writing to memory");
    out
}

/// Reads up to `len` bytes, fewer only at the end of the input.
fn read_chunk(input: &mut impl Read, len: usize) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(len);
    input.take(len as u64).read_to_end(&mut chunk)?;
    Ok(chunk)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A writer that hashes (sha256) and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Flushes, and returns the digest and the length.
    fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        self.inner.flush()?;
        Ok((Digest::sha256(self.hasher.finalize().into()), self.len))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::sha256(Sha256::digest(bytes).into())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;

    use super::*;

    /// A [`Dir`] over plain paths, for tests: trees the test made, never a tenant's.
    #[derive(Debug)]
    pub(crate) struct PathDir(pub(crate) PathBuf);

    impl Dir for PathDir {
        fn entries(&self) -> std::io::Result<Vec<(OsString, EntryKind)>> {
            let mut entries = std::fs::read_dir(&self.0)?
                .map(|e| {
                    let e = e?;
                    let t = e.file_type()?;
                    let kind = if t.is_symlink() {
                        EntryKind::Symlink
                    } else if t.is_dir() {
                        EntryKind::Dir
                    } else if t.is_file() {
                        EntryKind::File
                    } else {
                        EntryKind::Other
                    };
                    Ok((e.file_name(), kind))
                })
                .collect::<std::io::Result<Vec<_>>>()?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(entries)
        }

        fn metadata(&self, name: &OsStr) -> std::io::Result<std::fs::Metadata> {
            std::fs::symlink_metadata(self.0.join(name))
        }

        fn open_file(&self, name: &OsStr) -> std::io::Result<std::fs::File> {
            std::fs::File::open(self.0.join(name))
        }

        fn read_link(&self, name: &OsStr) -> std::io::Result<PathBuf> {
            std::fs::read_link(self.0.join(name))
        }

        fn dir(&self, name: &OsStr) -> std::io::Result<PathDir> {
            Ok(PathDir(self.0.join(name)))
        }
    }

    pub(crate) fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/file"), "hello").unwrap();
        std::fs::write(dir.path().join("a.txt"), vec![7u8; 9 * 1024 * 1024]).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        dir
    }

    #[test]
    fn a_changes_layer_holds_only_the_changes_with_their_modes_and_whiteouts() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tree();
        std::fs::write(dir.path().join("b/tool"), "x").unwrap();
        std::fs::set_permissions(
            dir.path().join("b/tool"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        let changes = Changes(
            [
                (
                    OsString::from("b"),
                    Change::Within(Changes(
                        [
                            (OsString::from("tool"), Change::Whole),
                            (OsString::from("gone"), Change::Removed),
                        ]
                        .into(),
                    )),
                ),
                (OsString::from("link"), Change::Whole),
            ]
            .into(),
        );
        let tmp = tempfile::tempdir().unwrap();
        let layer = changes_layer(
            &PathDir(dir.path().to_path_buf()),
            Some(&changes),
            tmp.path(),
        )
        .unwrap();
        let mut tar = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&layer.file).unwrap())
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let entries: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<(&str, u32)> = entries.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
        assert_eq!(
            names,
            [
                ("b", 0o755),
                ("b/.wh.gone", 0o644),
                ("b/tool", 0o4755),
                ("link", 0o777)
            ]
        );
        assert!(entries.iter().all(|(_, _, t)| *t == DETERMINISTIC_MTIME));
        // Everything, when no changes are named.
        let all = changes_layer(&PathDir(dir.path().to_path_buf()), None, tmp.path()).unwrap();
        assert!(all.tar_size > 9 * 1024 * 1024);
    }

    #[test]
    fn the_same_tree_gives_the_same_layer() {
        let first = tree();
        let second = tree();
        // Different times and order of creation must not matter.
        std::fs::write(second.path().join("b/c/file"), "hello").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let a = layer_of(&PathDir(first.path().into()), "workspace", tmp.path()).unwrap();
        let b = layer_of(&PathDir(second.path().into()), "workspace", tmp.path()).unwrap();
        assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));
        assert!(a.size < 1024 * 1024, "compressed: {}", a.size);
        assert_eq!(a.size, std::fs::metadata(&a.file).unwrap().len());
        // The file and the in-memory path agree.
        let tar = reproducible_tar(&PathDir(first.path().into()), "workspace").unwrap();
        assert_eq!(sha256(&tar), a.diff_id);
        assert_eq!(sha256(&compress(&tar)), a.digest);
    }

    #[test]
    fn the_layer_is_one_gzip_stream_of_the_tar() {
        let dir = tree();
        let tar = reproducible_tar(&PathDir(dir.path().into()), "workspace").unwrap();
        let compressed = compress(&tar);
        assert!(
            compressed.len() > 3,
            "several members: the tree is over {MEMBER} bytes"
        );
        let mut unzipped = Vec::new();
        flate2::read::MultiGzDecoder::new(&compressed[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, tar);
        let mut archive = tar::Archive::new(&tar[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!(
                    "{} {}",
                    e.path().unwrap().display(),
                    e.header().uid().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "workspace 0",
                "workspace/a.txt 0",
                "workspace/b 0",
                "workspace/b/c 0",
                "workspace/b/c/file 0",
                "workspace/link 0"
            ]
        );
    }

    /// A small tree fixed to the byte: contents, modes (only the owner's execute bit
    /// counts), a nested directory, a link, an empty file.
    pub(crate) fn golden_tree() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("lib/deep")).unwrap();
        std::fs::write(root.join("Procfile"), "web: bin/serve\n").unwrap();
        std::fs::write(root.join("bin/serve"), "#!/bin/sh\nexec echo hello\n").unwrap();
        std::fs::set_permissions(
            root.join("bin/serve"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(root.join("lib/deep/empty"), "").unwrap();
        std::fs::write(
            root.join("lib/data"),
            (0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
        .unwrap();
        std::fs::set_permissions(
            root.join("lib/data"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::os::unix::fs::symlink("bin/serve", root.join("start")).unwrap();
        dir
    }

    /// Guards every stored layer's name. If this fails, tar, flate2 or zlib-rs changed the
    /// bytes of a layer: the diff_id is the tar's, the digest the gzip's. Bump deliberately;
    /// every app re-pushes once (say so in the release notes).
    #[test]
    fn a_fixed_tree_keeps_its_layer_digests() {
        let tree = golden_tree();
        let tmp = tempfile::tempdir().unwrap();
        let layer = layer_of(&PathDir(tree.path().into()), "workspace", tmp.path()).unwrap();
        assert_eq!(
            (layer.diff_id.as_str(), layer.tar_size),
            (
                "sha256:5ff45e921be9071b2731a2a24b355a4dae47d0c0819c19ca304157453fc67187",
                107_008
            ),
            "the tar changed: bump deliberately; every app re-pushes once"
        );
        assert_eq!(
            (layer.digest.as_str(), layer.size),
            (
                "sha256:2fff7f3f327bc70f1b3adc9ec4e8002a34bb90d0b0c3de3c3f1d10aa9e7b16f8",
                2009
            ),
            "the gzip changed (flate2 or zlib-rs): bump deliberately; every app re-pushes once"
        );
    }

    #[test]
    fn an_empty_input_is_one_empty_gzip_member() {
        let compressed = compress(&[]);
        let mut unzipped = Vec::new();
        flate2::read::MultiGzDecoder::new(&compressed[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert!(unzipped.is_empty());
        assert_eq!(compressed, compress(&[]), "reproducible");
    }
}
