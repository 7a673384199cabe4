//! Rebasing an app's image onto the current run image without a build: the image store
//! swaps the base layers its label records for the run image's ([`oci::ImageStore::rebase`]),
//! and with a registry the result is pushed as builds push theirs, so only its config and
//! manifest are sent (the run image's layers are mounted, the app's are there already).

use domain::{Digest, ImageRef};

use crate::{BuildError, Builder, Log, RUN_IMAGE_REPOSITORY, run_image};

/// What [`Builder::rebase`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebased {
    /// The image, as a build records it: `host/app@sha256:…` when pushed, else its digest.
    pub image: String,
    /// The run image it is on now, and that run image's manifest digest.
    pub run_image: String,
    pub base: Digest,
    /// It was on that run image already: `image` is the one given, and nothing was made.
    pub unchanged: bool,
    /// The bytes its push sent the registry (`None` without a registry, or unchanged).
    pub pushed_bytes: Option<u64>,
}

impl Builder {
    /// Rebases `image`, an image a build of `app` made (as its build recorded it), onto the
    /// current run image (`--run-image`), tagged `<app>:<stem>-on-<base>`; pushed, with a
    /// registry. Refused, in one line that says what to do, without a run image, for an image
    /// this store does not hold, for one built on another run image, and as
    /// [`oci::ImageStore::base_of`] refuses.
    pub async fn rebase(
        &self,
        app: &str,
        image: &str,
        stem: &str,
        log: Log<'_>,
    ) -> Result<Rebased, BuildError> {
        let Some(name) = self.config.run_image.clone() else {
            return Err(BuildError::RunImage(
                "this platform builds on no run image, so there is none to rebase onto: start slipwayd with --run-image NAME".to_owned(),
            ));
        };
        let digest = ImageRef::parse(image)
            .ok()
            .and_then(|r| r.digest().cloned())
            .ok_or_else(|| {
                BuildError::RunImage(format!(
                    "the image {image} is not one Slipway built here: push again to build it"
                ))
            })?;
        let images = std::sync::Arc::clone(&self.images);
        let local_tag = {
            let app = app.to_owned();
            let stem = stem.to_owned();
            move |base: &Digest| format!("{app}:{}", tag(&stem, base))
        };
        let (stored, base) = tokio::task::spawn_blocking(move || {
            let base = images
                .find(&run_image::reference(&name))?
                .ok_or_else(|| BuildError::RunImage(format!(
                    "the run image {name} is not in the image store: make it with `slipwayd run-image --name {name}`"
                )))?;
            if !images.blob_path(&digest).is_file() {
                return Err(BuildError::RunImage(format!(
                    "the image {digest} is not in this image store: push again to rebuild it"
                )));
            }
            let record = images.base_of(&digest)?;
            if record.run_image != name {
                return Err(BuildError::RunImage(format!(
                    "this image was built on the run image {}, not {name}: push again to build it on {name}",
                    record.run_image
                )));
            }
            if record.manifest == base.digest {
                return Ok((None, base));
            }
            let stored = images.rebase(&digest, &name, &base, &local_tag(&base.digest))?;
            Ok::<_, BuildError>((Some(stored), base))
        })
        .await
        .map_err(std::io::Error::other)??;
        let name = self.config.run_image.clone().unwrap_or_default();
        let Some(stored) = stored else {
            return Ok(Rebased {
                image: image.to_owned(),
                run_image: name,
                base: base.digest,
                unchanged: true,
                pushed_bytes: None,
            });
        };
        log(&format!(
            "-----> Rebased onto run image {name} ({}): {}",
            base.digest, stored.digest
        ));
        let Some(registry) = &self.registry else {
            return Ok(Rebased {
                image: stored.digest.to_string(),
                run_image: name,
                base: base.digest,
                unchanged: false,
                pushed_bytes: None,
            });
        };
        // As a build's push: the run image once to its own repository, then the image with
        // the run image's layers mounted from there.
        let run_image = registry
            .push(
                &self.images,
                RUN_IMAGE_REPOSITORY,
                &name,
                &base.digest,
                None,
                log,
            )
            .await?;
        let mount_from = format!("{}:{name}", registry.repository(RUN_IMAGE_REPOSITORY));
        let pushed = registry
            .push(
                &self.images,
                app,
                &tag(stem, &base.digest),
                &stored.digest,
                Some(&mount_from),
                log,
            )
            .await?;
        let mut sent = run_image.report;
        sent.add(pushed.report);
        Ok(Rebased {
            image: pushed.reference,
            run_image: name,
            base: base.digest,
            unchanged: false,
            pushed_bytes: Some(sent.sent_bytes),
        })
    }
}

impl BuildError {
    /// Whether a rebase failed because of what the image is or how the platform is set up
    /// (the asker's to change: push again, make the run image), not because something broke
    /// (the image store's disk, the registry).
    pub fn refuses_rebase(&self) -> bool {
        matches!(
            self,
            BuildError::RunImage(_)
                | BuildError::Image(
                    oci::Error::DockerfileImage
                        | oci::Error::NoBase
                        | oci::Error::BaseMismatch
                        | oci::Error::Invalid { .. }
                        | oci::Error::Digest(_)
                )
        )
    }
}

/// The tag of a rebased image, in the image store and the registry: `<stem>-on-<base>`.
fn tag(stem: &str, base: &Digest) -> String {
    format!("{stem}-on-{}", &base.hex()[..12])
}
