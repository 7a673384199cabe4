//! From the store's records to the `/v1` wire types.

use std::collections::BTreeMap;

use api_types as wire;

use crate::ApiConfig;

pub(crate) fn user(user: &store::User) -> wire::User {
    wire::User {
        username: user.username.clone(),
        admin: user.admin,
        created_at: user.created_at,
    }
}

pub(crate) fn key(key: store::SshKey) -> wire::SshKey {
    wire::SshKey {
        id: key.id,
        fingerprint: key.fingerprint,
        comment: key.comment,
        public_key: key.public_key,
        created_at: key.created_at,
    }
}

/// Where the app answers on the router: `http://<app>.<domain>[:port]`.
pub(crate) fn app_url(config: &ApiConfig, app: &domain::AppName) -> String {
    let port = match config.router_port {
        80 => String::new(),
        port => format!(":{port}"),
    };
    format!("http://{app}.{}{port}", config.domain)
}

pub(crate) fn app(config: &ApiConfig, app: &store::App) -> wire::App {
    wire::App {
        name: app.name.to_string(),
        owner: app.owner.clone(),
        url: app_url(config, &app.name),
        git_url: format!("{}/{}.git", config.git_url.trim_end_matches('/'), app.name),
        created_at: app.created_at,
        stack: app.stack.to_string(),
    }
}

pub(crate) fn release(release: store::Release) -> wire::Release {
    wire::Release {
        version: release.version.get(),
        summary: release.summary,
        status: match release.status {
            domain::ReleaseStatus::Pending => wire::ReleaseStatus::Pending,
            domain::ReleaseStatus::Deploying => wire::ReleaseStatus::Deploying,
            domain::ReleaseStatus::Succeeded => wire::ReleaseStatus::Succeeded,
            domain::ReleaseStatus::Failed => wire::ReleaseStatus::Failed,
        },
        reason: release.reason,
        build: release.build,
        commit: release.commit,
        image: release.image,
        release_phase: release
            .release_phase_started_at
            .map(|started_at| wire::ReleasePhase {
                started_at,
                finished_at: release.release_phase_finished_at,
            }),
        created_by: release.created_by,
        created_at: release.created_at,
        deploy_started_at: release.deploy_started_at,
        deploy_finished_at: release.deploy_finished_at,
    }
}

pub(crate) fn process(p: store::ProcessRecord) -> wire::Process {
    wire::Process {
        name: p.name,
        process_type: p.process_type,
        command: p.command,
        release: u32::try_from(p.release).unwrap_or(0),
        state: match p.state.as_str() {
            "starting" => wire::ProcessState::Starting,
            "up" => wire::ProcessState::Up,
            "crashed" => wire::ProcessState::Crashed,
            _ => wire::ProcessState::Stopping,
        },
        since: p.since,
        restarts: u32::try_from(p.restarts).unwrap_or(0),
    }
}

pub(crate) fn collaborator(c: store::Collaborator) -> wire::Collaborator {
    wire::Collaborator {
        username: c.username,
        added_at: c.added_at,
    }
}

pub(crate) fn domain(d: store::Domain) -> wire::Domain {
    let (status, verified_at, challenge) = match d.state {
        store::DomainState::Pending { token } => (
            wire::DomainStatus::Pending,
            None,
            Some(wire::DomainChallenge {
                record: domain::challenge_record(&d.domain),
                value: token,
            }),
        ),
        store::DomainState::Verified { at } => (wire::DomainStatus::Verified, Some(at), None),
    };
    wire::Domain {
        domain: d.domain,
        created_at: d.created_at,
        status,
        verified_at,
        challenge,
    }
}

pub(crate) fn build(build: store::Build) -> wire::Build {
    wire::Build {
        id: build.id,
        commit: build.commit,
        status: match build.status {
            store::BuildStatus::Running => wire::BuildStatus::Running,
            store::BuildStatus::Succeeded => wire::BuildStatus::Succeeded,
            store::BuildStatus::Failed => wire::BuildStatus::Failed,
        },
        procfile: build.procfile,
        image: build.image,
        pushed_bytes: build.pushed_bytes,
        created_by: build.created_by,
        created_at: build.created_at,
        finished_at: build.finished_at,
        log: None,
    }
}

/// The formation with each type's command from the current build, and every type the
/// build declares (at 0 when never scaled), except `release`, which is not scaled.
pub(crate) fn formation(
    counts: Vec<store::ProcessCount>,
    procfile: Option<&std::collections::BTreeMap<String, String>>,
) -> Vec<wire::ProcessCount> {
    let mut out: Vec<wire::ProcessCount> = counts
        .into_iter()
        .map(|p| wire::ProcessCount {
            command: procfile.and_then(|f| f.get(&p.process_type).cloned()),
            process_type: p.process_type,
            count: p.count,
        })
        .collect();
    if let Some(procfile) = procfile {
        for (process_type, command) in procfile {
            if process_type != domain::ProcessType::RELEASE
                && !out.iter().any(|p| &p.process_type == process_type)
            {
                out.push(wire::ProcessCount {
                    process_type: process_type.clone(),
                    count: 0,
                    command: Some(command.clone()),
                });
            }
        }
        out.sort_by(|a, b| a.process_type.cmp(&b.process_type));
    }
    out
}

/// Each process type's health checks, for the types that have any.
pub(crate) fn health_checks(
    settings: &domain::ProcessSettings,
) -> BTreeMap<String, wire::HealthChecks> {
    let check = |probe: Option<&domain::Probe>| {
        probe.map(|p| {
            let (check_type, path, port, command) = match &p.check {
                domain::Check::HttpGet { path, port } => {
                    (wire::CheckType::HttpGet, Some(path.clone()), *port, None)
                }
                domain::Check::Exec { command } => {
                    (wire::CheckType::Exec, None, None, Some(command.clone()))
                }
            };
            wire::HealthCheck {
                check_type,
                path,
                port,
                command,
                period_seconds: p.period_seconds,
                timeout_seconds: p.timeout_seconds,
                failure_threshold: p.failure_threshold,
            }
        })
    };
    settings
        .iter()
        .filter(|(_, s)| s.liveness.is_some() || s.readiness.is_some())
        .map(|(t, s)| {
            let checks = wire::HealthChecks {
                liveness: check(s.liveness.as_ref()),
                readiness: check(s.readiness.as_ref()),
            };
            (t.to_string(), checks)
        })
        .collect()
}

/// Each process type's limits, for the types that have any.
pub(crate) fn limits(settings: &domain::ProcessSettings) -> BTreeMap<String, wire::Limits> {
    settings
        .iter()
        .filter(|(_, s)| !s.limits.is_empty())
        .map(|(t, s)| {
            let limits = wire::Limits {
                memory: s.limits.memory.map(|m| m.quantity()),
                cpu: s.limits.cpu.map(|c| c.quantity()),
            };
            (t.to_string(), limits)
        })
        .collect()
}

/// Each autoscaled process type's autoscaler.
pub(crate) fn autoscale(settings: &domain::ProcessSettings) -> BTreeMap<String, wire::Autoscale> {
    settings
        .iter()
        .filter_map(|(t, s)| {
            let a = s.autoscale?;
            let autoscale = wire::Autoscale {
                min: a.min,
                max: a.max,
                cpu_percent: a.cpu_percent,
            };
            Some((t.to_string(), autoscale))
        })
        .collect()
}
