//! Pushing images from the local store to an OCI registry through the distribution API:
//! blobs the registry has already are skipped, layers of the base image are mounted from
//! the base's repository instead of copied, and the manifest goes last, by digest.

use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use domain::Digest;
use oci_spec::image::ImageManifest;

use crate::image::{self, ImageStore};
use crate::{BuildError, Log};

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
    pub fn parse(text: &str) -> Result<RegistryConfig, String> {
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
            return Err(format!(
                "invalid registry {text:?}: give host:port or host:port/prefix"
            ));
        }
        let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
        let insecure = matches!(name, "localhost" | "127.0.0.1" | "[::1]");
        Ok(RegistryConfig {
            host: host.to_owned(),
            prefix,
            insecure,
        })
    }

    /// `host/prefix/app`.
    pub fn repository(&self, app: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}/{prefix}/{app}", self.host),
            None => format!("{}/{app}", self.host),
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

    /// Pushes the image `digest` of the local store as `<repository>:<tag>`, returning the
    /// reference by digest (`host/app@sha256:…`). `mounts` names a repository of this
    /// registry that holds the base image's layers.
    pub async fn push(
        &self,
        store: &ImageStore,
        app: &str,
        tag: &str,
        digest: &Digest,
        mount_from: Option<&str>,
        log: Log<'_>,
    ) -> Result<String, BuildError> {
        let repository = self.config.repository(app);
        let target = parse_reference(&format!("{repository}:{tag}"))?;
        self.client
            .store_auth_if_needed(target.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        // The manifest is parsed as one, and each digest in it before it names a blob.
        let manifest_bytes = image::read_bounded(&store.blob_path(digest))?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            BuildError::Buildpack(format!("the image {digest} has no valid manifest: {e}"))
        })?;
        let blobs = std::iter::once(manifest.config())
            .chain(manifest.layers())
            .map(|d| image::parse_digest(d.digest().as_ref()))
            .collect::<std::io::Result<Vec<Digest>>>()?;
        let source = mount_from.map(parse_reference).transpose()?;
        let (mut sent, mut skipped, mut mounted) = (0, 0, 0);
        for blob in &blobs {
            if self
                .client
                .blob_exists(&target, blob.as_str())
                .await
                .map_err(push_error)?
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
                .map_err(push_error)?;
            sent += 1;
        }
        let content_type = "application/vnd.oci.image.manifest.v1+json"
            .parse()
            .expect("a valid header value");
        self.client
            .push_manifest_raw(&target, manifest_bytes, content_type)
            .await
            .map_err(push_error)?;
        log(&format!(
            "       pushed {repository}:{tag}: {sent} blobs sent, {skipped} already there, {mounted} mounted"
        ));
        Ok(format!("{repository}@{digest}"))
    }
}

fn parse_reference(text: &str) -> Result<Reference, BuildError> {
    text.parse()
        .map_err(|e| BuildError::Buildpack(format!("invalid image reference {text:?}: {e}")))
}

fn push_error(err: oci_client::errors::OciDistributionError) -> BuildError {
    BuildError::Buildpack(format!("cannot push the image to the registry: {err}"))
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
        assert!(RegistryConfig::parse("").is_err());
        assert!(RegistryConfig::parse("host:5000//x").is_err());
        assert!(RegistryConfig::parse("bad host").is_err());
    }
}
