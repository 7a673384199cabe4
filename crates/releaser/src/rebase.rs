//! Rebasing an app: its running build's image onto the current run image, without a build,
//! as a new build (the same commit and Procfile, the new image) and a release of it, deployed
//! like any other. The image work itself is done by whoever holds the image store, the run
//! image and the registry (the builder, wired in by `slipwayd`), through [`Rebaser`].

use async_trait::async_trait;
use domain::{AppName, ReleaseStatus};
use store::{BuildSource, BuildStatus, Store, WorkKind};

use crate::{DeployError, Progress};

/// What a rebase of one image did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebasedImage {
    /// The image, as a build records it (`host/app@sha256:…` when pushed, else its digest).
    pub image: String,
    /// The run image it is on now, and that run image's manifest digest.
    pub run_image: String,
    pub base: String,
    /// It was on that run image already; nothing was made.
    pub unchanged: bool,
    /// The bytes its push sent the registry, if it was pushed.
    pub pushed_bytes: Option<u64>,
}

/// Why an image was not rebased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RebaseError {
    /// The image cannot be rebased (built from a Dockerfile, on no run image, …): the line
    /// says what to do instead.
    #[error("{0}")]
    Refused(String),
    /// It was tried and failed (the image store or the registry).
    #[error("{0}")]
    Failed(String),
}

/// Rebases images: done by whoever holds the image store, the run image and the registry.
#[async_trait]
pub trait Rebaser: std::fmt::Debug + Send + Sync + 'static {
    /// Rebases `image`, which a build of `app` made, onto the current run image; `stem`
    /// names it (the build's commit). Progress lines go to `progress`.
    async fn rebase(
        &self,
        app: &AppName,
        image: &str,
        stem: &str,
        progress: &Progress,
    ) -> Result<RebasedImage, RebaseError>;
}

/// A store error while rebasing is the platform's failure.
fn failed(err: store::Error) -> DeployError {
    DeployError::Failed(format!("cannot record the rebase: {err}"))
}

/// Rebases `name`'s current release's image as `by` asked: a new build of the same commit
/// and Procfile with the rebased image, its release, and that release's deploy queued.
/// Returns the release's version, or `None` when the image is on the current run image
/// already. Done again after a cut-off, it finds the release it made and makes no other.
pub(crate) async fn rebase_app(
    store: &Store,
    rebaser: Option<&dyn Rebaser>,
    name: &AppName,
    by: &str,
    progress: &Progress,
) -> Result<Option<u32>, DeployError> {
    let Some(rebaser) = rebaser else {
        return Err(DeployError::Unavailable(
            "this release manager holds no image store to rebase in: run it with the local runtime and --run-image, or on Kubernetes with --run-image and the gateways' images volume".to_owned(),
        ));
    };
    let app = store.app(name.as_str()).await.map_err(failed)?;
    let actor = match store.user(by).await {
        Ok(user) => user,
        Err(store::Error::NotFound(_)) => {
            return Err(DeployError::Invalid(format!(
                "the user {by:?} who asked for the rebase no longer exists"
            )));
        }
        Err(err) => return Err(failed(err)),
    };
    let no_image = || {
        DeployError::Invalid(format!(
            "{name} runs no image Slipway built, so there is nothing to rebase: push code first with `git push slipway main`"
        ))
    };
    let current = store
        .current_version(&app)
        .await
        .map_err(failed)?
        .ok_or_else(no_image)?;
    let release = store.release(&app, current).await.map_err(failed)?;
    let build = store
        .build(&app, release.build.ok_or_else(no_image)?)
        .await
        .map_err(failed)?;
    let image = build.image.clone().ok_or_else(no_image)?;
    let stem = build.commit.clone().unwrap_or_else(|| "image".to_owned());

    let rebased = rebaser
        .rebase(name, &image, &stem, progress)
        .await
        .map_err(|err| match err {
            RebaseError::Refused(m) => DeployError::Invalid(m),
            RebaseError::Failed(m) => DeployError::Failed(m),
        })?;
    let onto = format!("run image {} ({})", rebased.run_image, rebased.base);
    if rebased.unchanged {
        progress.send(&format!("{name} is on {onto} already: nothing to rebase"));
        return Ok(None);
    }
    // A rebase cut off after its release finds it: the newest release runs its image. One
    // whose deploy failed is made again, and deployed again.
    let latest = store.latest_release(&app).await.map_err(failed)?;
    if let (Some(id), false) = (latest.build, latest.status == ReleaseStatus::Failed) {
        let newest = store.build(&app, id).await.map_err(failed)?;
        if newest.image.as_deref() == Some(rebased.image.as_str()) {
            progress.send(&format!(
                "Rebased {name} onto {onto}: {}, no build ran",
                latest.version
            ));
            return Ok(Some(latest.version.get()));
        }
    }
    // A rebased build is its source's kind still: a push's, another app's promoted, or an
    // image's.
    let source = match (&build.promoted_from, &build.commit) {
        (Some(from), commit) => BuildSource::Promoted {
            image: rebased.image.clone(),
            commit: commit.clone(),
            from: from.clone(),
        },
        (None, Some(commit)) => BuildSource::Commit(commit.clone()),
        (None, None) => BuildSource::Image(rebased.image.clone()),
    };
    let new = store
        .create_build(&app, &source, &actor)
        .await
        .map_err(failed)?;
    store
        .finish_build(
            &app,
            new.id,
            BuildStatus::Succeeded,
            &build.procfile,
            Some(&rebased.image),
        )
        .await
        .map_err(failed)?;
    if let Some(bytes) = rebased.pushed_bytes {
        store
            .set_build_pushed_bytes(&app, new.id, bytes)
            .await
            .map_err(failed)?;
    }
    let release = store
        .release_rebased_build(&app, new.id, &actor, &rebased.run_image, &rebased.base)
        .await
        .map_err(failed)?;
    let deploy = WorkKind::Deploy {
        version: release.version,
        awaits_ref: false,
    };
    store.enqueue(name, &deploy).await.map_err(failed)?;
    progress.send(&format!(
        "Rebased {name} onto {onto}: {}, no build ran",
        release.version
    ));
    Ok(Some(release.version.get()))
}
