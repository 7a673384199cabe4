//! Each app's per-process-type settings (health checks, limits, autoscaling), kept as the JSON
//! of [`ProcessSettings`] on the app's row, and the changes of them, each committed together
//! with the work that applies it.

use domain::{Check, ProcessSettings, ProcessType, SettingsChange};

use crate::db::{on_db, record_event};
use crate::work::enqueue_on;
use crate::{App, Error, Result, Store, User, WorkId, WorkKind};

/// What a change of the process settings did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsChanged {
    /// Every type's settings after the change.
    pub settings: ProcessSettings,
    /// The [`WorkKind::Scale`] queued to apply them; `None` when nothing changed or nothing
    /// was to be queued.
    pub work: Option<WorkId>,
}

fn parse(app: &App, json: &str) -> Result<ProcessSettings> {
    serde_json::from_str(json)
        .map_err(|e| Error::corrupt(format!("the process settings of {}: {e}", app.name)))
}

impl Store {
    pub async fn process_settings(&self, app: &App) -> Result<ProcessSettings> {
        let json: Option<String> = on_db!(self, read, |pool| sqlx::query_scalar(
            "SELECT settings FROM apps WHERE id = $1"
        )
        .bind(app.id)
        .fetch_optional(pool)
        .await)?;
        parse(
            app,
            &json.ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?,
        )
    }

    /// Applies `change` to `process_type`'s settings, by the rules of
    /// [`ProcessSettings::change`] (`known`: the types of the app's current build, if any).
    /// When they change and `queue` is set (a release manager runs), a [`WorkKind::Scale`]
    /// is queued in the same transaction, so the change and its rollout cannot part. A
    /// change that leaves the settings as they were commits nothing and queues nothing.
    pub async fn change_process_settings(
        &self,
        app: &App,
        process_type: &ProcessType,
        change: &SettingsChange,
        known: Option<&[ProcessType]>,
        queue: bool,
        actor: &User,
    ) -> Result<SettingsChanged> {
        let (action, detail) = event(process_type, change);
        let changed = on_db!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            // Locks the row (PostgreSQL; SQLite has one writer) so concurrent changes of one
            // app's settings apply one after the other, none lost.
            let json: Option<String> = sqlx::query_scalar(
                "UPDATE apps SET settings = settings WHERE id = $1 RETURNING settings",
            )
            .bind(app.id)
            .fetch_optional(&mut *tx)
            .await?;
            let json = json.ok_or_else(|| Error::NotFound(format!("app {}", app.name)))?;
            let current = parse(app, &json)?;
            let settings = current.change(process_type, change, known)?;
            if settings == current {
                // Nothing to write: the transaction is dropped, committing nothing.
                return Ok(SettingsChanged {
                    settings,
                    work: None,
                });
            }
            let json = serde_json::to_string(&settings).map_err(Error::corrupt)?;
            sqlx::query("UPDATE apps SET settings = $2 WHERE id = $1")
                .bind(app.id)
                .bind(json)
                .execute(&mut *tx)
                .await?;
            let work = if queue {
                Some(enqueue_on!(&mut *tx, app.name, WorkKind::Scale)?)
            } else {
                None
            };
            record_event!(&mut *tx, app: app.name.as_str(), actor: &actor.username, action: action, detail: detail)?;
            tx.commit().await?;
            Ok::<_, Error>(SettingsChanged { settings, work })
        })?;
        if changed.work.is_some() {
            self.announce().await;
        }
        Ok(changed)
    }
}

/// The audit trail's action and detail for a change.
fn event(process_type: &ProcessType, change: &SettingsChange) -> (&'static str, String) {
    let t = process_type;
    match change {
        SettingsChange::SetProbe(kind, probe) => {
            let check = match &probe.check {
                Check::HttpGet { path, port } => match port {
                    Some(port) => format!("httpGet {path} on port {port}"),
                    None => format!("httpGet {path}"),
                },
                Check::Exec { command } => format!("exec {command}"),
            };
            ("healthchecks.set", format!("{t} {kind} {check}"))
        }
        SettingsChange::UnsetProbe(Some(kind)) => ("healthchecks.unset", format!("{t} {kind}")),
        SettingsChange::UnsetProbe(None) => ("healthchecks.unset", t.to_string()),
        SettingsChange::SetLimits(limits) => {
            let mut detail = t.to_string();
            if let Some(memory) = limits.memory {
                detail.push_str(&format!(" memory={memory}"));
            }
            if let Some(cpu) = limits.cpu {
                detail.push_str(&format!(" cpu={cpu}"));
            }
            ("limits.set", detail)
        }
        SettingsChange::UnsetLimits { memory, cpu } => {
            let which = match (memory, cpu) {
                (true, false) => " memory",
                (false, true) => " cpu",
                _ => "",
            };
            ("limits.unset", format!("{t}{which}"))
        }
        SettingsChange::SetAutoscale(a) => (
            "autoscale.set",
            format!("{t} min={} max={} cpu={}%", a.min, a.max, a.cpu_percent),
        ),
        SettingsChange::UnsetAutoscale => ("autoscale.unset", t.to_string()),
    }
}
