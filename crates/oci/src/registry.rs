//! Pushing images from the local store to an OCI registry through the distribution API:
//! blobs the registry has already are skipped, blobs another repository of the registry has
//! (a base image's layers) are mounted from it instead of copied, and the manifest goes
//! last, by digest.

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
    /// `name` under the registry's prefix), returning the reference by digest
    /// (`host/name@sha256:…`). `mount_from` names a repository of this registry that holds
    /// the base image's layers. Says what it did in one line to `log`.
    pub async fn push(
        &self,
        store: &ImageStore,
        name: &str,
        tag: &str,
        digest: &Digest,
        mount_from: Option<&str>,
        log: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<String> {
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
        let (mut sent, mut skipped, mut mounted) = (0, 0, 0);
        for blob in &blobs {
            if self
                .client
                .blob_exists(&target, blob.as_str())
                .await
                .map_err(Error::Push)?
            {
                skipped += 1;
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
                mounted += 1;
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
            sent += 1;
        }
        let content_type = "application/vnd.oci.image.manifest.v1+json"
            .parse()
            .expect("a valid header value");
        self.client
            .push_manifest_raw(&target, manifest_bytes, content_type)
            .await
            .map_err(Error::Push)?;
        log(&format!(
            "       pushed {repository}:{tag}: {sent} blobs sent, {skipped} already there, {mounted} mounted"
        ));
        Ok(format!("{repository}@{digest}"))
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
}
