//! Rebasing an image: the run image an image was built on is recorded in its config (the
//! label [`BASE_LABEL`], a [`BaseRecord`]), so its layers can later be swapped for a newer
//! run image's without a build, as Cloud Native Buildpacks' `rebase` does. The app's layers
//! stay byte-for-byte what they were; only the config and the manifest are new.
//!
//! Rebasing is safe only when the app's layers do not depend on the base's bytes: true of
//! buildpack builds (the run image is only what they run on), false of Dockerfile builds
//! (each `RUN` wrote over its base), which are refused.

use domain::Digest;
use oci_spec::image::{ImageConfiguration, MediaType};

use crate::layout::{FoundImage, ImageStore, LayerRef, StoredImage, canonical, parse_json};
use crate::{Error, Result};

/// The config label recording the run image an image was built on.
pub const BASE_LABEL: &str = "io.slipway.base";

/// The label saying how an image was built; `dockerfile` images are never rebased.
const BUILD_LABEL: &str = "io.slipway.build";

/// The most base layers a record may list; a run image has a handful.
const MAX_BASE_LAYERS: usize = 1000;

/// The run image an image was built on, as its [`BASE_LABEL`] records it: which one, its
/// manifest and layers (the image's first layers), its environment, and the environment the
/// build set over it, so that the image's environment can be made again over another base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRecord {
    /// The run image's name (`base` for `run-image:base`).
    pub run_image: String,
    /// The run image's manifest digest.
    pub manifest: Digest,
    /// The run image's layers: the image's first layers.
    pub layers: Vec<LayerRef>,
    /// The run image's environment.
    pub env: Vec<String>,
    /// What the build set over it (`KEY=VALUE`); these win over the run image's.
    pub app_env: Vec<String>,
}

/// The label as JSON. `top_layer` (the diff_id of the base's last layer) is written for
/// people and tools that read it, as CNB's `runImage.topLayer`; it is derived, not read.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    run_image: String,
    manifest: String,
    #[serde(default)]
    top_layer: Option<String>,
    layers: Vec<WireLayer>,
    env: Vec<String>,
    app_env: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireLayer {
    digest: String,
    diff_id: String,
    size: u64,
}

impl BaseRecord {
    /// The record of an image built on `base`, the run image `run_image`, with `app_env` set
    /// over its environment.
    pub fn new(run_image: &str, base: &FoundImage, app_env: Vec<String>) -> BaseRecord {
        BaseRecord {
            run_image: run_image.to_owned(),
            manifest: base.digest.clone(),
            layers: base.layers.clone(),
            env: base.env.clone(),
            app_env,
        }
    }

    /// The label's value: JSON with its keys sorted, so equal records are equal bytes.
    pub fn label(&self) -> String {
        let wire = Wire {
            run_image: self.run_image.clone(),
            manifest: self.manifest.to_string(),
            top_layer: self.layers.last().map(|l| l.diff_id.to_string()),
            layers: self
                .layers
                .iter()
                .map(|l| WireLayer {
                    digest: l.digest.to_string(),
                    diff_id: l.diff_id.to_string(),
                    size: l.size,
                })
                .collect(),
            env: self.env.clone(),
            app_env: self.app_env.clone(),
        };
        let bytes = canonical(&wire).expect("strings and numbers serialise");
        String::from_utf8(bytes).expect("JSON is UTF-8")
    }

    /// The record a label holds, every digest in it parsed.
    pub fn parse(label: &str) -> Result<BaseRecord> {
        let what = format!("the label {BASE_LABEL}");
        let wire: Wire = parse_json(label.as_bytes(), &what)?;
        if wire.layers.len() > MAX_BASE_LAYERS {
            return Err(Error::Invalid {
                what,
                reason: format!("it lists more than {MAX_BASE_LAYERS} layers"),
            });
        }
        Ok(BaseRecord {
            run_image: wire.run_image,
            manifest: Digest::parse(&wire.manifest)?,
            layers: wire
                .layers
                .iter()
                .map(|l| {
                    Ok(LayerRef {
                        digest: Digest::parse(&l.digest)?,
                        diff_id: Digest::parse(&l.diff_id)?,
                        size: l.size,
                    })
                })
                .collect::<Result<_>>()?,
            env: wire.env,
            app_env: wire.app_env,
        })
    }

    /// The environment of an image of this record's app on a base with `base_env`.
    pub fn env_on(&self, base_env: &[String]) -> Vec<String> {
        image_env(base_env, &self.app_env)
    }
}

/// An image's environment: `base`'s, with `app`'s variables set over it, sorted by name.
/// Entries without `=` are dropped. The builder and [`ImageStore::rebase`] both make an
/// image's environment this way, so a rebased image has the environment a build on the new
/// base would have had.
pub fn image_env(base: &[String], app: &[String]) -> Vec<String> {
    // `collect` keeps the last of equal keys: `app`'s, which come after `base`'s.
    let all: std::collections::BTreeMap<&str, &str> = base
        .iter()
        .chain(app)
        .filter_map(|e| e.split_once('='))
        .collect();
    all.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

impl ImageStore {
    /// The run image `image` was built on, as its config records it. Refused, with a line
    /// that says why and what to do: an image built from a Dockerfile, one that records no
    /// base, and one whose first layers are not the base it records.
    pub fn base_of(&self, image: &Digest) -> Result<BaseRecord> {
        let found = self.image(image)?;
        let config = self.config_of(image)?;
        let labels = config.labels_of_config().cloned().unwrap_or_default();
        if labels.get(BUILD_LABEL).map(String::as_str) == Some("dockerfile") {
            return Err(Error::DockerfileImage);
        }
        let record = BaseRecord::parse(labels.get(BASE_LABEL).ok_or(Error::NoBase)?)?;
        if found.layers.len() < record.layers.len()
            || found.layers[..record.layers.len()] != record.layers[..]
        {
            return Err(Error::BaseMismatch);
        }
        Ok(record)
    }

    /// Writes `image` again on `new_base`, the run image `run_image`, and tags it `name`:
    /// the base layers its label records are replaced by `new_base`'s, every app layer's
    /// descriptor is kept as it is, the diff_ids and the environment are made again, and the
    /// label records the new base. Everything else in the config and the manifest is kept.
    /// Refused as [`ImageStore::base_of`] refuses, and when a layer of `new_base` is not in
    /// the store. Blocking.
    pub fn rebase(
        &self,
        image: &Digest,
        run_image: &str,
        new_base: &FoundImage,
        name: &str,
    ) -> Result<StoredImage> {
        let record = self.base_of(image)?;
        for layer in &new_base.layers {
            if !self.blob_path(&layer.digest).is_file() {
                return Err(Error::LayerGone(layer.digest.clone()));
            }
        }
        let n = record.layers.len();
        let found = self.image(image)?;
        let app_layers = &found.layers[n..];

        // The documents are edited as JSON, so whatever else they hold stays as it was.
        let manifest_text = self.read_document(image)?;
        let mut manifest: serde_json::Value =
            parse_json(&manifest_text, &format!("the manifest {image}"))?;
        let config_digest = Digest::parse(self.manifest(image)?.config().digest().as_ref())?;
        let mut config: serde_json::Value = parse_json(
            &self.read_document(&config_digest)?,
            &format!("the config {config_digest}"),
        )?;
        let invalid = |reason: &str| Error::Invalid {
            what: format!("the image {image}"),
            reason: reason.to_owned(),
        };

        let descriptors = manifest["layers"]
            .as_array()
            .ok_or_else(|| invalid("its manifest has no layers"))?;
        let mut layers: Vec<serde_json::Value> = new_base
            .layers
            .iter()
            .map(|l| {
                crate::layout::descriptor(MediaType::ImageLayerGzip, &l.digest, l.size)
                    .and_then(|d| Ok(serde_json::to_value(d).map_err(std::io::Error::other)?))
            })
            .collect::<Result<_>>()?;
        layers.extend(descriptors[n..].iter().cloned());
        manifest["layers"] = serde_json::Value::Array(layers);

        let record = BaseRecord::new(run_image, new_base, record.app_env);
        let diff_ids: Vec<String> = new_base
            .layers
            .iter()
            .chain(app_layers)
            .map(|l| l.diff_id.to_string())
            .collect();
        config["rootfs"]["diff_ids"] = serde_json::json!(diff_ids);
        let inner = config
            .get_mut("config")
            .and_then(serde_json::Value::as_object_mut)
            .ok_or_else(|| invalid("its config has no config"))?;
        inner.insert(
            "Env".to_owned(),
            serde_json::json!(record.env_on(&new_base.env)),
        );
        inner
            .entry("Labels")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .ok_or_else(|| invalid("its labels are not an object"))?
            .insert(BASE_LABEL.to_owned(), record.label().into());

        let config_bytes = canonical(&config)?;
        // What is written must still be an image config.
        parse_json::<ImageConfiguration>(&config_bytes, "the rebased config")?;
        let config_digest = crate::sha256(&config_bytes);
        self.put_blob(&config_digest, &config_bytes)?;
        manifest["config"]["digest"] = config_digest.to_string().into();
        manifest["config"]["size"] = config_bytes.len().into();
        let manifest_bytes = canonical(&manifest)?;
        let digest = crate::sha256(&manifest_bytes);
        self.put_blob(&digest, &manifest_bytes)?;
        self.tag_manifest(name, &digest, manifest_bytes.len() as u64)?;
        let all: Vec<&LayerRef> = new_base.layers.iter().chain(app_layers).collect();
        Ok(StoredImage {
            digest,
            layers: all.iter().map(|l| l.digest.clone()).collect(),
            size: all.iter().map(|l| l.size).sum(),
        })
    }

    /// The config of the image whose manifest has `digest`, parsed as one.
    fn config_of(&self, digest: &Digest) -> Result<ImageConfiguration> {
        let config_digest = Digest::parse(self.manifest(digest)?.config().digest().as_ref())?;
        parse_json(
            &self.read_document(&config_digest)?,
            &format!("the config {config_digest}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::layer::tests::PathDir;
    use crate::layout::{ImageSpec, LayerSource};

    /// A tree of `files` (`path`, contents).
    fn tree_of(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// Stores a run image of `files` with `env`, as `slipwayd run-image` does.
    fn run_image(store: &ImageStore, files: &[(&str, &str)], env: &[&str]) -> FoundImage {
        let dir = tree_of(files);
        let layer = store.layer(&PathDir(dir.path().into()), "").unwrap();
        let spec = ImageSpec {
            env: env.iter().map(|e| (*e).to_owned()).collect(),
            working_dir: None,
            labels: BTreeMap::from([("io.slipway.run-image".into(), "base".into())]),
            ..ImageSpec::default()
        };
        let stored = store
            .write_image("run-image:base", &[layer.into()], &spec)
            .unwrap();
        store.image(&stored.digest).unwrap()
    }

    /// The app's environment over its base.
    fn app_env() -> Vec<String> {
        vec![
            "HOME=/workspace".into(),
            "PATH=/workspace/bin:/usr/bin:/bin".into(),
        ]
    }

    /// An app image of two layers (dependencies, code) on `base`, as the builder's export
    /// makes one: `extra` labels besides the processes and the base record.
    fn build_on(
        store: &ImageStore,
        base: &FoundImage,
        app: &Path,
        extra: &[(&str, &str)],
    ) -> Digest {
        let deps = store
            .layer(&PathDir(app.join("deps")), "layers/deps")
            .unwrap();
        let code = store
            .layer(&PathDir(app.join("code")), "workspace")
            .unwrap();
        let mut labels = BTreeMap::from([(
            "io.slipway.processes".to_owned(),
            r#"{"web":"bin/web"}"#.to_owned(),
        )]);
        labels.insert(
            BASE_LABEL.to_owned(),
            BaseRecord::new("base", base, app_env()).label(),
        );
        for (k, v) in extra {
            labels.insert((*k).to_owned(), (*v).to_owned());
        }
        let spec = ImageSpec {
            env: image_env(&base.env, &app_env()),
            working_dir: Some("/workspace".into()),
            labels,
            ..ImageSpec::default()
        };
        let layers: Vec<LayerSource> = vec![deps.into(), code.into()];
        store
            .write_image_on("demo:abc", &base.layers, &layers, &spec)
            .unwrap()
            .digest
    }

    fn app() -> tempfile::TempDir {
        tree_of(&[
            ("deps/lib/dep.py", "dep = 1\n"),
            ("code/app.py", "print(1)\n"),
        ])
    }

    fn env_of(store: &ImageStore, image: &Digest) -> Vec<String> {
        store.image(image).unwrap().env
    }

    #[test]
    fn a_rebased_image_is_the_image_a_build_on_the_new_base_makes() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let old = run_image(
            &store,
            &[("bin/sh", "old shell")],
            &["PATH=/usr/bin:/bin", "LANG=C"],
        );
        let app = app();
        let image = build_on(&store, &old, app.path(), &[]);
        let before = store.image(&image).unwrap();
        let record = store.base_of(&image).unwrap();
        assert_eq!(record.manifest, old.digest);
        assert_eq!(record.layers, old.layers);
        assert_eq!(record.app_env, app_env());

        let new = run_image(
            &store,
            &[("bin/sh", "new shell"), ("usr/lib/libssl.so", "patched")],
            &[
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "LANG=C.UTF-8",
                "TZ=UTC",
            ],
        );
        assert_ne!(new.layers, old.layers);
        let rebased = store
            .rebase(&image, "base", &new, "demo:abc-rebase-1")
            .unwrap();
        let after = store.image(&rebased.digest).unwrap();

        // The base's layers are the new run image's; the app's are the same blobs.
        assert_eq!(after.layers[..1], new.layers[..]);
        assert_eq!(after.layers[1..], before.layers[1..]);
        let descriptors = |digest: &Digest| {
            let manifest: serde_json::Value =
                serde_json::from_slice(&store.read_document(digest).unwrap()).unwrap();
            manifest["layers"].as_array().unwrap().clone()
        };
        assert_eq!(
            descriptors(&rebased.digest)[1..],
            descriptors(&image)[1..],
            "the app layers' descriptors are kept as they were"
        );
        // The run image's variables are the new ones; the app's still win over them.
        assert_eq!(
            env_of(&store, &rebased.digest),
            [
                "HOME=/workspace",
                "LANG=C.UTF-8",
                "PATH=/workspace/bin:/usr/bin:/bin",
                "TZ=UTC"
            ]
        );
        // The label records the new base.
        let record = store.base_of(&rebased.digest).unwrap();
        assert_eq!(
            (
                record.manifest.clone(),
                record.layers.clone(),
                record.env.clone()
            ),
            (new.digest.clone(), new.layers.clone(), new.env.clone())
        );
        assert_eq!(
            store.find("demo:abc-rebase-1").unwrap().unwrap().digest,
            rebased.digest
        );

        // Exactly the image a build of the same app on the new base makes, and back.
        assert_eq!(
            rebased.digest,
            build_on(&store, &new, app.path(), &[]),
            "a rebase is a build on the new base, without the build"
        );
        let back = store
            .rebase(&rebased.digest, "base", &old, "demo:back")
            .unwrap();
        assert_eq!(back.digest, image, "and it goes back the same way");
    }

    #[test]
    fn images_a_rebase_cannot_swap_the_base_of_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let old = run_image(&store, &[("bin/sh", "old")], &["PATH=/bin"]);
        let new = run_image(&store, &[("bin/sh", "new")], &["PATH=/bin"]);
        let app = app();

        // Built from a Dockerfile: its layers depend on their base.
        let dockerfile = build_on(
            &store,
            &old,
            app.path(),
            &[("io.slipway.build", "dockerfile")],
        );
        // Built without a run image: nothing records a base.
        let code = store
            .layer(&PathDir(app.path().join("code")), "workspace")
            .unwrap();
        let bare = store
            .write_image("demo:bare", &[code.into()], &ImageSpec::default())
            .unwrap()
            .digest;
        // A label that names a base the image is not on.
        let lying = {
            let deps = store
                .layer_or_reuse(&PathDir(app.path().join("code")), "workspace")
                .unwrap();
            let spec = ImageSpec {
                labels: BTreeMap::from([(
                    BASE_LABEL.to_owned(),
                    BaseRecord::new("base", &old, app_env()).label(),
                )]),
                ..ImageSpec::default()
            };
            store
                .write_image_on("demo:lying", &new.layers, &[deps], &spec)
                .unwrap()
                .digest
        };
        // A label that is not a record.
        let garbled = {
            let spec = ImageSpec {
                labels: BTreeMap::from([(
                    BASE_LABEL.to_owned(),
                    r#"{"run_image":"base","manifest":"sha256:../../x","layers":[],"env":[],"app_env":[]}"#
                        .to_owned(),
                )]),
                ..ImageSpec::default()
            };
            store
                .write_image_on("demo:garbled", &old.layers, &[], &spec)
                .unwrap()
                .digest
        };
        let index = std::fs::read(store.root().join("index.json")).unwrap();
        for (image, expected) in [
            (
                &dockerfile,
                "rebase swaps the run image under buildpack builds; this image was built from a Dockerfile whose layers depend on its base: push again to rebuild",
            ),
            (&bare, "this image records no run image it was built on"),
            (
                &lying,
                "this image's first layers are not the run image it records",
            ),
            (&garbled, "invalid digest"),
        ] {
            let err = store
                .rebase(image, "base", &new, "demo:rebased")
                .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
        assert_eq!(
            std::fs::read(store.root().join("index.json")).unwrap(),
            index,
            "nothing tagged"
        );
    }

    #[test]
    fn the_label_reads_back_what_was_recorded() {
        let layer = LayerRef {
            digest: crate::sha256(b"gz"),
            diff_id: crate::sha256(b"tar"),
            size: 2,
        };
        let record = BaseRecord {
            run_image: "base".into(),
            manifest: crate::sha256(b"manifest"),
            layers: vec![layer.clone()],
            env: vec!["PATH=/bin".into()],
            app_env: app_env(),
        };
        let label = record.label();
        assert_eq!(BaseRecord::parse(&label).unwrap(), record);
        let json: serde_json::Value = serde_json::from_str(&label).unwrap();
        assert_eq!(json["top_layer"], layer.diff_id.to_string());
        assert!(BaseRecord::parse("{}").is_err());
        assert!(BaseRecord::parse("not json").is_err());
    }
}
