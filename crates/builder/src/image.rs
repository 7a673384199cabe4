//! OCI images: reproducible layers, the image config, and the local image store (an OCI
//! image layout under the data directory).
//!
//! A layer is a tar of a directory with its entries sorted, owners zeroed and times fixed,
//! so the same tree always gives the same bytes; it is compressed as a series of gzip members
//! of fixed size, each compressed on its own thread. Concatenated members are one valid gzip
//! stream (RFC 1952), so every OCI client reads it, and the fixed member size keeps the
//! digest independent of the number of threads.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use domain::Digest;
use oci_spec::image::{
    ConfigBuilder, DescriptorBuilder, ImageConfiguration, ImageConfigurationBuilder, ImageIndex,
    ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, RootFsBuilder,
    SCHEMA_VERSION,
};
use sha2::{Digest as _, Sha256};

use crate::tenant_fs::{Kind, Tree};

/// The size of each gzip member, compressed independently.
const MEMBER: usize = 4 * 1024 * 1024;

/// Where the app lives in its image.
pub const APP_DIR: &str = "/workspace";

/// The label holding the image's process types (a JSON object of type → command).
pub const PROCESSES_LABEL: &str = "io.slipway.processes";

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
/// stays bounded by a few gzip members whatever the size of the tree.
pub fn layer_from_dir(dir: &Path, prefix: &str, tmp: &Path) -> std::io::Result<Layer> {
    layer_from_tree(&open_tree(dir)?, prefix, tmp)
}

/// [`layer_from_dir`] of a directory already held open.
pub(crate) fn layer_from_tree(dir: &Tree, prefix: &str, tmp: &Path) -> std::io::Result<Layer> {
    let tar = tempfile::NamedTempFile::new_in(tmp)?;
    let mut hashing = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, tar.as_file()));
    write_tar(dir, prefix, &mut hashing)?;
    let (diff_id, tar_size) = hashing.finish()?;
    let compressed = tempfile::NamedTempFile::new_in(tmp)?;
    let mut out = Hashing::new(std::io::BufWriter::with_capacity(
        1 << 20,
        compressed.as_file(),
    ));
    compress_stream(std::fs::File::open(tar.path())?, &mut out)?;
    let (digest, size) = out.finish()?;
    Ok(Layer {
        file: compressed.into_temp_path(),
        size,
        digest,
        diff_id,
        tar_size,
    })
}

/// A tar of `dir` under `prefix`, in memory (for tests and small trees).
pub fn reproducible_tar(dir: &Path, prefix: &str) -> std::io::Result<Vec<u8>> {
    let mut tar = Vec::new();
    write_tar(&open_tree(dir)?, prefix, &mut tar)?;
    Ok(tar)
}

/// Writes a tar of `dir` under `prefix`: entries in byte order of their paths, ownership and
/// times fixed (tar's deterministic header mode), symlinks kept as links and never followed.
/// The tree is a build's: every entry is reached through `dir`'s handle, never by a path, so
/// a link (a symlinked directory on the way included) cannot take the walk outside it;
/// devices, fifos and sockets are left out.
fn write_tar(dir: &Tree, prefix: &str, out: &mut impl Write) -> std::io::Result<()> {
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
fn append_tree(
    builder: &mut tar::Builder<impl Write>,
    dir: &Tree,
    at: &Path,
) -> std::io::Result<()> {
    for (name, kind) in dir.entries().map_err(io)? {
        let relative = Path::new(&name);
        let path = at.join(relative);
        if kind == Kind::Other {
            continue;
        }
        let meta = dir.metadata(relative).map_err(io)?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Deterministic);
        match kind {
            Kind::Dir => {
                builder.append_data(&mut header, &path, std::io::empty())?;
                let sub = dir
                    .dir(relative)
                    .map_err(io)?
                    .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
                append_tree(builder, &sub, &path)?;
            }
            Kind::File => {
                let file = dir.open_file(relative).map_err(io)?;
                // Exactly the size the header says, even if the file changed meanwhile.
                let size = meta.len();
                let data = file.take(size).chain(std::io::repeat(0)).take(size);
                builder.append_data(&mut header, &path, data)?;
            }
            Kind::Symlink => {
                let target = dir.read_link(relative).map_err(io)?;
                header.set_size(0);
                builder.append_link(&mut header, &path, target)?;
            }
            Kind::Other => {}
        }
    }
    Ok(())
}

fn open_tree(dir: &Path) -> std::io::Result<Tree> {
    Tree::open(dir, "").map_err(io)
}

/// A tenant-path error as an I/O error, its message kept.
fn io(error: crate::BuildError) -> std::io::Error {
    match error {
        crate::BuildError::Io(e) => e,
        other => std::io::Error::other(other.to_string()),
    }
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

pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::sha256(Sha256::digest(bytes).into())
}

/// A layer already in the store, as an image's manifest and config name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

/// An image found in the store by its name: its layers and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundImage {
    pub digest: Digest,
    pub layers: Vec<LayerRef>,
    pub env: Vec<String>,
}

/// What goes into an image's config besides its layers.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// An image written to the store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The manifest's digest: the image's name.
    pub digest: Digest,
    pub layers: Vec<Digest>,
    pub size: u64,
}

/// The local image store: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256`).
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    /// One writer of `index.json` at a time.
    index: std::sync::Mutex<()>,
}

impl ImageStore {
    pub fn open(root: PathBuf) -> std::io::Result<ImageStore> {
        std::fs::create_dir_all(root.join("blobs").join("sha256"))?;
        std::fs::create_dir_all(root.join("tmp"))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !root.join("index.json").exists() {
            let index = ImageIndexBuilder::default()
                .schema_version(SCHEMA_VERSION)
                .manifests(Vec::new())
                .build()
                .map_err(std::io::Error::other)?;
            atomic_write(&root.join("index.json"), &canonical(&index)?)?;
        }
        Ok(ImageStore {
            root,
            index: std::sync::Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob's file. Only a parsed [`Digest`] names one, so the path is always one plain
    /// name (64 hex digits) under `blobs/sha256`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// Writes a blob unless it is there already. Returns whether it was new.
    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> std::io::Result<bool> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(false);
        }
        atomic_write(&path, bytes)?;
        Ok(true)
    }

    /// Adds a blob from a file in the store's `tmp/`, unless it is there already: a hard link,
    /// so the bytes are not copied. Returns whether it was new.
    pub fn put_blob_file(&self, digest: &Digest, file: &Path) -> std::io::Result<bool> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(false);
        }
        match std::fs::hard_link(file, &path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(_) => {
                let bytes = std::fs::read(file)?;
                self.put_blob(digest, &bytes)
            }
        }
    }

    /// Where layers are made before they become blobs: on the store's filesystem.
    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Makes a layer of `dir` at `prefix`, ready for [`ImageStore::write_image`].
    pub fn layer_from_dir(&self, dir: &Path, prefix: &str) -> std::io::Result<Layer> {
        layer_from_dir(dir, prefix, &self.tmp())
    }

    /// [`ImageStore::layer_from_dir`] of a directory already held open.
    pub(crate) fn layer_from_tree(&self, dir: &Tree, prefix: &str) -> std::io::Result<Layer> {
        layer_from_tree(dir, prefix, &self.tmp())
    }

    /// Writes an image of `layers` and tags it `name` in the index.
    pub fn write_image(
        &self,
        name: &str,
        layers: &[Layer],
        spec: &ImageSpec,
    ) -> std::io::Result<StoredImage> {
        self.write_image_on(name, &[], layers, spec)
    }

    /// Writes an image of `base`'s layers (already in the store, such as a run image's) and
    /// then `layers`, and tags it `name`.
    pub fn write_image_on(
        &self,
        name: &str,
        base: &[LayerRef],
        layers: &[Layer],
        spec: &ImageSpec,
    ) -> std::io::Result<StoredImage> {
        for layer in layers {
            self.put_blob_file(&layer.digest, &layer.file)?;
        }
        let all: Vec<LayerRef> = base
            .iter()
            .cloned()
            .chain(layers.iter().map(|l| LayerRef {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                size: l.size,
            }))
            .collect();
        let config = ConfigBuilder::default()
            .env(spec.env.clone())
            .working_dir(APP_DIR.to_owned())
            .labels(
                spec.labels
                    .clone()
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
            .build()
            .map_err(std::io::Error::other)?;
        let rootfs = RootFsBuilder::default()
            .typ("layers".to_owned())
            .diff_ids(
                all.iter()
                    .map(|l| l.diff_id.to_string())
                    .collect::<Vec<_>>(),
            )
            .build()
            .map_err(std::io::Error::other)?;
        let image_config = ImageConfigurationBuilder::default()
            .architecture(oci_spec::image::Arch::Amd64)
            .os(oci_spec::image::Os::Linux)
            .config(config)
            .rootfs(rootfs)
            .build()
            .map_err(std::io::Error::other)?;
        let config_bytes = canonical(&image_config)?;
        let config_digest = sha256(&config_bytes);
        self.put_blob(&config_digest, &config_bytes)?;
        let descriptor = |media: MediaType, digest: &Digest, size: u64| {
            DescriptorBuilder::default()
                .media_type(media)
                .digest(oci_digest(digest)?)
                .size(size)
                .build()
                .map_err(std::io::Error::other)
        };
        let layer_descriptors = all
            .iter()
            .map(|l| descriptor(MediaType::ImageLayerGzip, &l.digest, l.size))
            .collect::<std::io::Result<Vec<_>>>()?;
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(descriptor(
                MediaType::ImageConfig,
                &config_digest,
                config_bytes.len() as u64,
            )?)
            .layers(layer_descriptors)
            .build()
            .map_err(std::io::Error::other)?;
        let manifest_bytes = canonical(&manifest)?;
        let digest = sha256(&manifest_bytes);
        self.put_blob(&digest, &manifest_bytes)?;
        let mut tagged = descriptor(
            MediaType::ImageManifest,
            &digest,
            manifest_bytes.len() as u64,
        )?;
        tagged.set_annotations(Some(
            [(
                "org.opencontainers.image.ref.name".to_owned(),
                name.to_owned(),
            )]
            .into_iter()
            .collect(),
        ));
        self.tag(name, tagged)?;
        Ok(StoredImage {
            digest,
            layers: all.iter().map(|l| l.digest.clone()).collect(),
            size: all.iter().map(|l| l.size).sum(),
        })
    }

    /// The image tagged `name`, if the store has one.
    pub fn find(&self, name: &str) -> std::io::Result<Option<FoundImage>> {
        let index: ImageIndex = parse_json(&read_bounded(&self.root.join("index.json"))?)?;
        let Some(entry) = index.manifests().iter().find(|m| {
            m.annotations()
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                .map(String::as_str)
                == Some(name)
        }) else {
            return Ok(None);
        };
        self.image(&parse_digest(entry.digest().as_ref())?)
            .map(Some)
    }

    /// The image whose manifest has `digest`: its layers and environment. The manifest and
    /// config are parsed as OCI documents and every digest in them parsed before it names a
    /// blob.
    pub fn image(&self, digest: &Digest) -> std::io::Result<FoundImage> {
        let manifest: ImageManifest = parse_json(&read_bounded(&self.blob_path(digest))?)?;
        let config_digest = parse_digest(manifest.config().digest().as_ref())?;
        let config: ImageConfiguration =
            parse_json(&read_bounded(&self.blob_path(&config_digest))?)?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(invalid(format!(
                "the image {digest} lists {} layers and {} diff ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let layers = manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| {
                Ok(LayerRef {
                    digest: parse_digest(layer.digest().as_ref())?,
                    diff_id: parse_digest(diff_id)?,
                    size: layer.size(),
                })
            })
            .collect::<std::io::Result<_>>()?;
        let env = config
            .config()
            .as_ref()
            .and_then(|c| c.env().clone())
            .unwrap_or_default();
        Ok(FoundImage {
            digest: digest.clone(),
            layers,
            env,
        })
    }

    /// Points `name` at `manifest` in `index.json`, replacing what it named before.
    fn tag(&self, name: &str, manifest: oci_spec::image::Descriptor) -> std::io::Result<()> {
        let _guard = self.index.lock().expect("never poisoned");
        let path = self.root.join("index.json");
        let mut index: ImageIndex = parse_json(&read_bounded(&path)?)?;
        let mut manifests: Vec<_> = index
            .manifests()
            .iter()
            .filter(|m| {
                m.annotations()
                    .as_ref()
                    .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                    .map(String::as_str)
                    != Some(name)
            })
            .cloned()
            .collect();
        manifests.push(manifest);
        index.set_manifests(manifests);
        atomic_write(&path, &canonical(&index)?)
    }
}

/// A digest read from a document: parsed before it names anything.
pub fn parse_digest(digest: &str) -> std::io::Result<Digest> {
    Digest::parse(digest).map_err(|e| invalid(e.to_string()))
}

fn oci_digest(digest: &Digest) -> std::io::Result<oci_spec::image::Digest> {
    digest.as_str().parse().map_err(std::io::Error::other)
}

fn invalid(text: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, text)
}

/// The most a manifest, config or index may be: larger is no document Slipway wrote.
const MAX_DOCUMENT: u64 = 4 << 20;

/// A JSON document of the store, refused past [`MAX_DOCUMENT`] bytes.
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(invalid(format!(
            "{} is over {MAX_DOCUMENT} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> std::io::Result<T> {
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a valid OCI document: {e}")))
}

/// JSON with object keys sorted, so equal documents are equal bytes.
fn canonical<T: serde::Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    let value = serde_json::to_value(value).map_err(std::io::Error::other)?;
    serde_json::to_vec(&value).map_err(std::io::Error::other)
}

fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("blobs live in directories");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        std::fs::write(dir.path().join("b/c/file"), "hello").unwrap();
        std::fs::write(dir.path().join("a.txt"), vec![7u8; 9 * 1024 * 1024]).unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        dir
    }

    #[test]
    fn the_same_tree_gives_the_same_layer() {
        let first = tree();
        let second = tree();
        // Different times and order of creation must not matter.
        std::fs::write(second.path().join("b/c/file"), "hello").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let a = layer_from_dir(first.path(), "workspace", tmp.path()).unwrap();
        let b = layer_from_dir(second.path(), "workspace", tmp.path()).unwrap();
        assert_eq!((a.digest.clone(), a.diff_id.clone()), (b.digest, b.diff_id));
        assert!(a.size < 1024 * 1024, "compressed: {}", a.size);
        assert_eq!(a.size, std::fs::metadata(&a.file).unwrap().len());
        // The file and the in-memory path agree.
        let tar = reproducible_tar(first.path(), "workspace").unwrap();
        assert_eq!(sha256(&tar), a.diff_id);
        assert_eq!(sha256(&compress(&tar)), a.digest);
    }

    #[test]
    fn the_layer_is_one_gzip_stream_of_the_tar() {
        let dir = tree();
        let tar = reproducible_tar(dir.path(), "workspace").unwrap();
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

    #[test]
    fn the_store_is_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let layer = store.layer_from_dir(tree().path(), "workspace").unwrap();
        let spec = ImageSpec {
            env: vec!["PATH=/usr/bin:/bin".into()],
            labels: BTreeMap::from([(PROCESSES_LABEL.into(), "{}".into())]),
        };
        let first = store
            .write_image("demo:v1", std::slice::from_ref(&layer), &spec)
            .unwrap();
        let again = store.write_image("demo:v1", &[layer], &spec).unwrap();
        assert_eq!(
            first.digest, again.digest,
            "the same inputs make the same image"
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.root().join("index.json")).unwrap())
                .unwrap();
        assert_eq!(
            index["manifests"].as_array().unwrap().len(),
            1,
            "retagging replaces"
        );
        assert!(store.blob_path(&first.digest).exists());
    }

    #[test]
    fn digests_in_a_stored_manifest_are_parsed_before_they_name_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        // A file beside the blobs stands for what a path in a digest would reach.
        std::fs::write(dir.path().join("secret"), r#"{"rootfs":{"diff_ids":[]}}"#).unwrap();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let config_digest = sha256(config);
        store.put_blob(&config_digest, config).unwrap();
        let manifest = |config: &str, layer: &str| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{layer}]}}"#
            )
        };
        let layer = |digest: &str| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{digest}","size":1}}"#
            )
        };
        let upper = format!("sha256:{}", "AB".repeat(32));
        let cases = [
            manifest("sha256:../../../secret", ""),
            manifest(&upper, ""),
            manifest(&format!("sha512:{}", "ab".repeat(64)), ""),
            manifest(config_digest.as_str(), &layer("sha256:../../../secret")),
            manifest(config_digest.as_str(), &layer(&upper)),
            "not json".to_owned(),
        ];
        for text in cases {
            let digest = sha256(text.as_bytes());
            store.put_blob(&digest, text.as_bytes()).unwrap();
            let err = store.image(&digest).expect_err(&text);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{text}: {err}");
        }
        // A well-formed one with no layers is read.
        let good = manifest(config_digest.as_str(), "");
        let digest = sha256(good.as_bytes());
        store.put_blob(&digest, good.as_bytes()).unwrap();
        assert_eq!(store.image(&digest).unwrap().layers, []);
    }
}
