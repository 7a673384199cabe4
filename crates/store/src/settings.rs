//! Each app's per-process-type settings (health checks, limits, autoscaling), kept as the JSON
//! of [`ProcessSettings`] on the app's row, and the changes of them, each committed together
//! with the work that applies it.

use domain::{Check, ProcessSettings, ProcessType, SettingsChange};

use crate::documents::Document;
use crate::{App, Result, Store, User, WorkId, WorkKind};

/// What a change of the process settings did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsChanged {
    /// Every type's settings after the change.
    pub settings: ProcessSettings,
    /// The [`WorkKind::Scale`] queued to apply them; `None` when nothing changed or nothing
    /// was to be queued.
    pub work: Option<WorkId>,
}

impl Store {
    pub async fn process_settings(&self, app: &App) -> Result<ProcessSettings> {
        self.document(app, Document::Settings).await
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
        let changed = self
            .change_document(
                app,
                Document::Settings,
                |current: &ProcessSettings| Ok(current.change(process_type, change, known)?),
                queue.then_some(WorkKind::Scale),
                event(process_type, change),
                actor,
            )
            .await?;
        Ok(SettingsChanged {
            settings: changed.document,
            work: changed.work,
        })
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
