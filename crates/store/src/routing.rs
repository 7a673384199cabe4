//! Each app's routing switches, kept as the JSON of [`RoutingSettings`] on the app's row; each
//! change commits together with the [`WorkKind::Hosts`] that hands it to the router.

use domain::{RoutingChange, RoutingSettings};

use crate::documents::Document;
use crate::{App, Result, Store, User, WorkId, WorkKind};

/// What a change of the routing switches did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingChanged {
    /// The app's switches after the change.
    pub settings: RoutingSettings,
    /// The [`WorkKind::Hosts`] queued to apply them; `None` when nothing changed.
    pub work: Option<WorkId>,
}

impl Store {
    pub async fn routing_settings(&self, app: &App) -> Result<RoutingSettings> {
        self.document(app, Document::Routing).await
    }

    /// Applies `change` by the rules of [`RoutingSettings::apply`]; refused (and nothing
    /// changed) when it breaks one. When the switches change, a [`WorkKind::Hosts`] is queued
    /// in the same transaction, so the router learns them; a change that leaves them as they
    /// were commits nothing and queues nothing.
    pub async fn change_routing(
        &self,
        app: &App,
        change: &RoutingChange,
        actor: &User,
    ) -> Result<RoutingChanged> {
        let changed = self
            .change_document(
                app,
                Document::Routing,
                |current: &RoutingSettings| {
                    let mut settings = current.clone();
                    settings.apply(change)?;
                    Ok(settings)
                },
                Some(WorkKind::Hosts),
                event(change),
                actor,
            )
            .await?;
        Ok(RoutingChanged {
            settings: changed.document,
            work: changed.work,
        })
    }
}

/// The audit trail's action and detail for a change.
fn event(change: &RoutingChange) -> (&'static str, String) {
    let list = |ranges: &[domain::Cidr]| {
        ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match change {
        RoutingChange::Enabled(true) => ("routing.enable", String::new()),
        RoutingChange::Enabled(false) => ("routing.disable", String::new()),
        RoutingChange::Maintenance(true) => ("maintenance.on", String::new()),
        RoutingChange::Maintenance(false) => ("maintenance.off", String::new()),
        RoutingChange::Allow(ranges) => ("whitelist.add", list(ranges)),
        RoutingChange::Disallow(ranges) => ("whitelist.remove", list(ranges)),
        RoutingChange::Https { force: true, hsts } => (
            "tls.enable",
            if *hsts {
                "hsts".to_owned()
            } else {
                String::new()
            },
        ),
        RoutingChange::Https { force: false, .. } => ("tls.disable", String::new()),
    }
}
