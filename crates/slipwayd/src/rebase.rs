//! Rebase: the builder, which holds the image store, the run image and the registry, does
//! the release manager's rebase work; and `slipwayd rebase --all`, the operator's way to move
//! every app onto a new run image, queues that work and reports each app's outcome.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use store::{Fault, WorkKind, WorkOutcome};

/// The builder as the release manager's [`releaser::Rebaser`].
#[derive(Debug)]
pub(crate) struct BuilderRebaser(pub(crate) Arc<builder::Builder>);

#[async_trait::async_trait]
impl releaser::Rebaser for BuilderRebaser {
    async fn rebase(
        &self,
        app: &domain::AppName,
        image: &str,
        stem: &str,
        progress: &releaser::Progress,
    ) -> Result<releaser::RebasedImage, releaser::RebaseError> {
        let log = |line: &str| progress.send(line);
        match self.0.rebase(app.as_str(), image, stem, &log).await {
            Ok(done) => Ok(releaser::RebasedImage {
                image: done.image,
                run_image: done.run_image,
                base: done.base.to_string(),
                unchanged: done.unchanged,
                pushed_bytes: done.pushed_bytes,
            }),
            Err(err) if err.refuses_rebase() => {
                Err(releaser::RebaseError::Refused(err.to_string()))
            }
            Err(err) => Err(releaser::RebaseError::Failed(err.to_string())),
        }
    }
}

/// `slipwayd rebase`: queues the rebase of each app named (or of every app) as `as_user`
/// and reports how each went, one line per app. Apps on the current run image already, and
/// apps whose image cannot be rebased, are reported and left as they are.
pub(crate) async fn rebase(args: crate::config::RebaseArgs) -> anyhow::Result<()> {
    let storage = args.database.resolve()?;
    let store = store::Store::open(&storage.database_url)
        .await
        .context("cannot open the database")?;
    let actor = store.user(&args.as_user).await.with_context(|| {
        format!(
            "cannot find the user {:?} to make the releases as: name one with --as",
            args.as_user
        )
    })?;
    let apps = match (args.all, args.apps.is_empty()) {
        (true, true) => store.all_apps().await?,
        (false, false) => {
            let mut apps = Vec::new();
            for name in &args.apps {
                apps.push(
                    store
                        .app(name)
                        .await
                        .with_context(|| format!("no app {name}"))?,
                );
            }
            apps
        }
        _ => bail!("name the apps to rebase, or give --all (not both)"),
    };
    let wait = Duration::from_secs(args.timeout);
    let mut failed = 0;
    for app in &apps {
        let kind = WorkKind::Rebase {
            by: actor.username.clone(),
        };
        let work = store.enqueue(&app.name, &kind).await?;
        let mut last = String::new();
        let outcome = store
            .await_work(work, Some(tokio::time::Instant::now() + wait), |line| {
                last = line.to_owned();
            })
            .await?;
        match outcome {
            Some(WorkOutcome::Succeeded { .. }) => println!("{last}"),
            Some(WorkOutcome::Failed {
                fault: Fault::Invalid,
                reason,
            }) => println!("{}: not rebased: {reason}", app.name),
            Some(WorkOutcome::Failed { reason, .. }) => {
                failed += 1;
                println!("{}: failed: {reason}", app.name);
            }
            None => {
                failed += 1;
                println!(
                    "{}: no release manager did it within {}s; it stays queued",
                    app.name,
                    wait.as_secs()
                );
            }
        }
    }
    store.close().await;
    if failed > 0 {
        bail!("{failed} of {} apps were not rebased", apps.len());
    }
    Ok(())
}
