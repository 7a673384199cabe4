//! Pushing images from the local store to an OCI registry through the distribution API:
//! blobs the registry has already are skipped, blobs another repository of the registry has
//! (a base image's layers) are mounted from it instead of copied, and the manifest goes
//! last, by digest. Pulling one into the store (a Dockerfile's `FROM`): every document
//! size-capped and parsed, every blob checked against its digest before it is stored.

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::ImageManifest;
use tokio::io::AsyncReadExt as _;

use domain::Digest;

use crate::layout::{ImageStore, MAX_DOCUMENT, parse_json};
use crate::{Error, Result};

/// Where images go: `host:port` and an optional path prefix, as `--registry` gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    pub host: String,
    pub prefix: Option<String>,
    /// Plain HTTP: for a registry on loopback or a private network.
    pub insecure: bool,
}

impl RegistryConfig {
    /// Parses `host:port[/prefix]`. Loopback registries are spoken to over plain HTTP.
    pub fn parse(text: &str) -> Result<RegistryConfig> {
        let text = text.trim().trim_end_matches('/');
        let (host, prefix) = text
            .split_once('/')
            .map_or((text, None), |(h, p)| (h, Some(p.to_owned())));
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        if !valid
            || prefix
                .as_deref()
                .is_some_and(|p| p.is_empty() || p.starts_with('/') || p.contains("//"))
        {
            return Err(Error::RegistryAddress(text.to_owned()));
        }
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        let insecure = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
        Ok(RegistryConfig {
            host: host.to_owned(),
            prefix,
            insecure,
        })
    }

    /// `host/prefix/name`.
    pub fn repository(&self, name: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}/{prefix}/{name}", self.host),
            None => format!("{}/{name}", self.host),
        }
    }
}

/// The images of one registry.
pub struct Registry {
    config: RegistryConfig,
    client: Client,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Registry {
        let protocol = if config.insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            ..Default::default()
        });
        Registry { config, client }
    }

    /// `host/prefix/name`.
    pub fn repository(&self, name: &str) -> String {
        self.config.repository(name)
    }

    /// Pushes the image `digest` of the local store as `<repository>:<tag>` (the repository
    /// `name` under the registry's prefix): each blob the registry lacks is mounted from
    /// `mount_from` (a repository of this registry that holds the base image's layers) or
    /// sent, then the manifest. Says what it did in one line to `log`, and returns the
    /// reference by digest and what crossed the wire.
    pub async fn push(
        &self,
        store: &ImageStore,
        name: &str,
        tag: &str,
        digest: &Digest,
        mount_from: Option<&str>,
        log: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<Pushed> {
        let repository = self.config.repository(name);
        let target = parse_reference(&format!("{repository}:{tag}"))?;
        self.client
            .store_auth_if_needed(target.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        // The manifest is parsed as one, and each digest in it before it names a blob.
        let manifest_bytes = read_document(store, digest).await?;
        let manifest: ImageManifest =
            parse_json(&manifest_bytes, &format!("the manifest {digest}"))?;
        let blobs = std::iter::once(manifest.config())
            .chain(manifest.layers())
            .map(|d| Digest::parse(d.digest().as_ref()))
            .collect::<Result<Vec<Digest>, _>>()?;
        let source = mount_from.map(parse_reference).transpose()?;
        let mut report = PushReport::default();
        for blob in &blobs {
            if self
                .client
                .blob_exists(&target, blob.as_str())
                .await
                .map_err(Error::Push)?
            {
                report.skipped += 1;
                continue;
            }
            if let Some(source) = &source
                && self
                    .client
                    .blob_exists(source, blob.as_str())
                    .await
                    .unwrap_or(false)
                && self
                    .client
                    .mount_blob(&target, source, blob.as_str())
                    .await
                    .is_ok()
            {
                report.mounted += 1;
                continue;
            }
            // Streamed from the store's file, so a large layer is never all in memory.
            let file = tokio::fs::File::open(store.blob_path(blob)).await?;
            let size = file.metadata().await?.len();
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                .map(|chunk| chunk.map_err(oci_client::errors::OciDistributionError::from));
            self.client
                .push_blob_stream(&target, stream, blob.as_str(), Some(size))
                .await
                .map_err(Error::Push)?;
            report.sent += 1;
            report.sent_bytes += size;
        }
        let content_type = "application/vnd.oci.image.manifest.v1+json"
            .parse()
            .expect("a valid header value");
        self.client
            .push_manifest_raw(&target, manifest_bytes, content_type)
            .await
            .map_err(Error::Push)?;
        log(&format!("       pushed {repository}:{tag}: {report}"));
        Ok(Pushed {
            reference: format!("{repository}@{digest}"),
            report,
        })
    }
}

/// The most a pulled image's layers may be, together.
pub const MAX_PULL: u64 = 10 << 30;

/// The manifest types a pull accepts: OCI's, and Docker's, which has the same shape.
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The layer types a pull accepts: gzipped tars, which the runtimes unpack.
const LAYER_TYPES: [&str; 2] = [
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

impl Registry {
    /// Pulls `<repository>:<tag>` (the repository `name` under the registry's prefix) into
    /// `store`, tagged `local` there; returns its manifest's digest. Blobs the store has are
    /// not fetched again. Refused: a manifest that is not one image's (an index), a layer that
    /// is not a gzipped tar, layers over [`MAX_PULL`] together, and any blob whose bytes are
    /// not its digest.
    pub async fn pull(
        &self,
        store: &ImageStore,
        name: &str,
        tag: &str,
        local: &str,
    ) -> Result<Digest> {
        let repository = self.config.repository(name);
        let what = format!("{repository}:{tag}");
        let source = parse_reference(&what)?;
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&source, &RegistryAuth::Anonymous, &MANIFEST_TYPES)
            .await
            .map_err(|e| Error::Pull(what.clone(), e))?;
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Err(Error::TooLarge {
                what: format!("the manifest of {what}"),
                limit: MAX_DOCUMENT,
            });
        }
        let manifest: ImageManifest = parse_json(&bytes, &format!("the manifest of {what}"))?;
        let invalid = |reason: String| Error::Invalid {
            what: format!("the image {what}"),
            reason,
        };
        let mut total = 0u64;
        for layer in manifest.layers() {
            let media = layer.media_type().to_string();
            if !LAYER_TYPES.contains(&media.as_str()) {
                return Err(invalid(format!("a layer is {media}, not a gzipped tar")));
            }
            total = total.saturating_add(layer.size());
        }
        if total > MAX_PULL {
            return Err(invalid(format!(
                "its layers are over {} together",
                crate::human_size(MAX_PULL)
            )));
        }
        let config = manifest.config();
        if config.size() > MAX_DOCUMENT {
            return Err(Error::TooLarge {
                what: format!("the config of {what}"),
                limit: MAX_DOCUMENT,
            });
        }
        let blobs = std::iter::once(config)
            .chain(manifest.layers())
            .map(|d| Ok((Digest::parse(d.digest().as_ref())?, d.size())))
            .collect::<Result<Vec<(Digest, u64)>>>()?;
        for (digest, size) in &blobs {
            if store.blob_path(digest).is_file() {
                continue;
            }
            self.pull_blob(store, &source, &what, digest, *size).await?;
        }
        let digest = crate::layer::sha256(&bytes);
        store.put_blob(&digest, &bytes)?;
        store.tag_manifest(local, &digest, bytes.len() as u64)?;
        Ok(digest)
    }

    /// Streams the blob `digest` of `size` bytes into the store, checked as it comes.
    async fn pull_blob(
        &self,
        store: &ImageStore,
        source: &Reference,
        what: &str,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        use sha2::Digest as _;
        use tokio::io::AsyncWriteExt as _;
        let descriptor = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let mut stream = self
            .client
            .pull_blob_stream(source, &descriptor)
            .await
            .map_err(|e| Error::Pull(what.to_owned(), e))?;
        let tmp = tempfile::NamedTempFile::new_in(store.tmp())?;
        let mut file = tokio::fs::File::from_std(tmp.reopen()?);
        let mut hasher = sha2::Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| std::io::Error::other(format!("pulling {what}: {e}")))?;
            got += chunk.len() as u64;
            if got > size {
                return Err(Error::Invalid {
                    what: format!("the blob {digest} of {what}"),
                    reason: format!("it is longer than the {size} bytes its manifest says"),
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        if Digest::sha256(hasher.finalize().into()) != *digest || got != size {
            return Err(Error::Invalid {
                what: format!("the blob {digest} of {what}"),
                reason: "its bytes are not its digest".to_owned(),
            });
        }
        let path = tmp.into_temp_path();
        store.put_blob_file(digest, &path)?;
        Ok(())
    }
}

/// A pushed image: its reference by digest (`host/name@sha256:…`), and what the push sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub reference: String,
    pub report: PushReport,
}

/// What one push did with the image's blobs (config and layers; the manifest not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs uploaded, and their bytes (compressed, as stored).
    pub sent: u32,
    pub sent_bytes: u64,
    /// Blobs the repository had already.
    pub skipped: u32,
    /// Blobs mounted from another repository of the registry, without upload.
    pub mounted: u32,
}

impl PushReport {
    /// Adds another push's counts (an app's image after its run image's).
    pub fn add(&mut self, other: PushReport) {
        self.sent += other.sent;
        self.sent_bytes += other.sent_bytes;
        self.skipped += other.skipped;
        self.mounted += other.mounted;
    }
}

impl std::fmt::Display for PushReport {
    /// `12 KiB in 2 blobs sent, 3 already there, 1 mounted`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in {} blob{} sent, {} already there, {} mounted",
            crate::human_size(self.sent_bytes),
            self.sent,
            if self.sent == 1 { "" } else { "s" },
            self.skipped,
            self.mounted
        )
    }
}

/// The document blob `digest`, read without blocking, refused past [`MAX_DOCUMENT`] bytes.
async fn read_document(store: &ImageStore, digest: &Digest) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    tokio::fs::File::open(store.blob_path(digest))
        .await?
        .take(MAX_DOCUMENT + 1)
        .read_to_end(&mut bytes)
        .await?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(Error::TooLarge {
            what: format!("the blob {digest}"),
            limit: MAX_DOCUMENT,
        });
    }
    Ok(bytes)
}

fn parse_reference(text: &str) -> Result<Reference> {
    text.parse()
        .map_err(|e: oci_client::ParseError| Error::Reference {
            text: text.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LayerRef;

    #[test]
    fn parses_registry_addresses() {
        let local = RegistryConfig::parse("127.0.0.1:5000").unwrap();
        assert_eq!(
            (local.repository("demo"), local.insecure),
            ("127.0.0.1:5000/demo".to_owned(), true)
        );
        let remote = RegistryConfig::parse("registry.example.com/team/apps/").unwrap();
        assert_eq!(
            (remote.repository("demo"), remote.insecure),
            ("registry.example.com/team/apps/demo".to_owned(), false)
        );
        for bad in ["", "host:5000//x", "bad host"] {
            let err = RegistryConfig::parse(bad).unwrap_err();
            assert!(matches!(err, Error::RegistryAddress(_)), "{bad}: {err}");
        }
    }

    /// A registry of the test environment, under a prefix of this test's own.
    fn test_registry() -> (String, Registry) {
        // The client is built without a TLS provider: the binary chooses one, as here.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let host = std::env::var("SLIPWAY_TEST_REGISTRY").expect(
            "SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry",
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!("{host}/oci-test-{}-{nanos}", std::process::id());
        let registry = Registry::new(RegistryConfig::parse(&prefix).unwrap());
        (prefix, registry)
    }

    #[tokio::test]
    async fn an_image_pulled_is_the_image_pushed() {
        let (_, registry) = test_registry();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("a")).unwrap();
        let base = image(&store, "base:1", &[], "base");
        registry
            .push(&store, "tools", "1", &base.digest, None, &|_| {})
            .await
            .unwrap();
        let other = ImageStore::open(dir.path().join("b")).unwrap();
        let pulled = registry
            .pull(&other, "tools", "1", "pulled:tools:1")
            .await
            .unwrap();
        assert_eq!(pulled, base.digest);
        assert_eq!(
            other.find("pulled:tools:1").unwrap().unwrap(),
            store.image(&base.digest).unwrap()
        );
        let error = registry
            .pull(&other, "nothing", "1", "x")
            .await
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("cannot pull "), "{error}");
    }

    /// A one-layer image of a tree holding `file` with `text`, tagged `name`.
    fn image(
        store: &ImageStore,
        name: &str,
        base: &[crate::LayerRef],
        text: &str,
    ) -> crate::StoredImage {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("file"), text).unwrap();
        let layer = store
            .layer(&crate::layer::tests::PathDir(tree.path().into()), "")
            .unwrap();
        store
            .write_image_on(name, base, &[layer.into()], &crate::ImageSpec::default())
            .unwrap()
    }

    #[tokio::test]
    async fn a_push_skips_what_the_registry_has_and_mounts_the_base_layers() {
        let (prefix, registry) = test_registry();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let base = image(&store, "base:1", &[], "base");
        let base_layers = store.image(&base.digest).unwrap().layers;
        let app = image(&store, "app:1", &base_layers, "app");
        let said = std::sync::Mutex::new(Vec::new());
        let log = |line: &str| said.lock().unwrap().push(line.trim().to_owned());

        // The bytes a push must send: the config's and the layers' the registry lacks.
        let blob_bytes = |image: &Digest, skip: &[LayerRef]| -> u64 {
            let manifest: ImageManifest =
                serde_json::from_slice(&std::fs::read(store.blob_path(image)).unwrap()).unwrap();
            std::iter::once(manifest.config())
                .chain(manifest.layers())
                .filter(|d| {
                    !skip
                        .iter()
                        .any(|l| l.digest.as_str() == d.digest().as_ref())
                })
                .map(|d| d.size())
                .sum()
        };
        let pushed = registry
            .push(&store, "base", "1", &base.digest, None, &log)
            .await
            .unwrap();
        assert_eq!(pushed.reference, format!("{prefix}/base@{}", base.digest));
        let base_bytes = blob_bytes(&base.digest, &[]);
        assert_eq!(
            pushed.report,
            PushReport {
                sent: 2,
                sent_bytes: base_bytes,
                skipped: 0,
                mounted: 0
            }
        );
        let from = format!("{}:1", registry.repository("base"));
        let app_bytes = blob_bytes(&app.digest, &base_layers);
        let mut reports = Vec::new();
        for _ in 0..2 {
            let pushed = registry
                .push(&store, "app", "1", &app.digest, Some(&from), &log)
                .await
                .unwrap();
            assert_eq!(pushed.reference, format!("{prefix}/app@{}", app.digest));
            reports.push(pushed.report);
        }
        assert_eq!(
            reports,
            [
                PushReport {
                    sent: 2,
                    sent_bytes: app_bytes,
                    skipped: 0,
                    mounted: 1
                },
                PushReport {
                    sent: 0,
                    sent_bytes: 0,
                    skipped: 3,
                    mounted: 0
                },
            ]
        );
        let size = crate::human_size;
        assert_eq!(
            *said.lock().unwrap(),
            [
                format!(
                    "pushed {prefix}/base:1: {} in 2 blobs sent, 0 already there, 0 mounted",
                    size(base_bytes)
                ),
                format!(
                    "pushed {prefix}/app:1: {} in 2 blobs sent, 0 already there, 1 mounted",
                    size(app_bytes)
                ),
                format!("pushed {prefix}/app:1: 0 B in 0 blobs sent, 3 already there, 0 mounted"),
            ]
        );
    }

    #[tokio::test]
    async fn a_stored_manifest_that_is_none_is_refused_before_anything_is_sent() {
        let (_, registry) = test_registry();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let text = br#"{"schemaVersion":2,"config":{"digest":"sha256:../../x"}}"#;
        let digest = crate::sha256(text);
        store.put_blob(&digest, text).unwrap();
        let err = registry
            .push(&store, "bad", "1", &digest, None, &|_| {
                panic!("nothing is pushed")
            })
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
    }
}
