//! Judging a rollout as `kubectl rollout status` does, from a Deployment's status alone:
//! a pure function, so each of its answers is tested without a cluster.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

/// Where a Deployment's rollout is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Still going; the text says what it waits for.
    Waiting(String),
    /// Every replica runs the new template and is available.
    Done,
    /// The Deployment controller gave up: `progressDeadlineSeconds` passed without progress.
    Failed(String),
}

/// Where `deployment`'s rollout is, by the rules of `kubectl rollout status`.
pub fn status(deployment: &Deployment) -> Rollout {
    // A deadline the controller reported before it saw this spec is an earlier rollout's.
    let Some(status) = observed(deployment) else {
        return unobserved(deployment);
    };
    if let Some(condition) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Progressing"))
        && condition.reason.as_deref() == Some("ProgressDeadlineExceeded")
    {
        return Rollout::Failed(
            condition
                .message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".to_owned()),
        );
    }
    replica_status(deployment)
}

/// Where `deployment`'s rollout is by its replicas alone, whatever its progress deadline
/// says: for putting a previous release back, whose ReplicaSet is there already while the
/// Deployment still reports the failed rollout's deadline.
pub fn replica_status(deployment: &Deployment) -> Rollout {
    let Some(status) = observed(deployment) else {
        return unobserved(deployment);
    };
    let wanted = deployment.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted {
        return Rollout::Waiting(format!("{updated} of {wanted} new replicas updated"));
    }
    if replicas > updated {
        return Rollout::Waiting(format!(
            "{} old replicas pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Rollout::Waiting(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Rollout::Done
}

/// The Deployment's status, once the controller has seen its current spec.
fn observed(deployment: &Deployment) -> Option<&DeploymentStatus> {
    let status = deployment.status.as_ref()?;
    let generation = deployment.metadata.generation.unwrap_or(0);
    (status.observed_generation.unwrap_or(0) >= generation).then_some(status)
}

/// What a Deployment whose spec the controller has not seen yet waits for.
fn unobserved(deployment: &Deployment) -> Rollout {
    Rollout::Waiting(match deployment.status {
        None => "waiting for the deployment to be observed".to_owned(),
        Some(_) => "waiting for the deployment spec update to be observed".to_owned(),
    })
}

/// Why ReplicaSets cannot make their pods (`ReplicaFailure`: refused by admission, over a
/// quota), in one line.
pub fn replica_set_trouble(replica_sets: &[ReplicaSet]) -> Option<String> {
    let reasons: Vec<String> = replica_sets
        .iter()
        .flat_map(|rs| {
            let name = rs.metadata.name.clone().unwrap_or_default();
            rs.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .filter(|c| {
                    c.type_.as_deref() == Some("ReplicaFailure")
                        && c.status.as_deref() == Some("True")
                })
                .map(move |c| {
                    format!(
                        "ReplicaSet {name} {}",
                        join(c.reason.as_deref(), c.message.as_deref())
                    )
                })
        })
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Why pods are not ready, in one line, from their conditions and their containers' states:
/// what a person would look for with `kubectl describe pod`.
pub fn pod_trouble(pods: &[Pod]) -> Option<String> {
    let mut reasons = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("?");
        let Some(status) = &pod.status else {
            continue;
        };
        let waiting = status.container_statuses.iter().flatten().find_map(|c| {
            let state = c.state.as_ref()?;
            if let Some(w) = &state.waiting {
                return Some(join(w.reason.as_deref(), w.message.as_deref()));
            }
            if let Some(t) = &state.terminated
                && t.exit_code != 0
            {
                return Some(format!(
                    "exited with status {}{}",
                    t.exit_code,
                    t.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ));
            }
            None
        });
        let unready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| (c.type_ == "Ready" || c.type_ == "PodScheduled") && c.status != "True")
            .map(|c| {
                let what = if c.type_ == "Ready" {
                    "not ready"
                } else {
                    "not scheduled"
                };
                match (&c.reason, &c.message) {
                    (None, None) => what.to_owned(),
                    (reason, message) => {
                        format!("{what}: {}", join(reason.as_deref(), message.as_deref()))
                    }
                }
            });
        if let Some(reason) = waiting.or(unready) {
            reasons.push(format!("pod {name} {reason}"));
        }
    }
    reasons.sort();
    reasons.dedup();
    match reasons.len() {
        0 => None,
        1..=3 => Some(reasons.join("; ")),
        n => Some(format!("{}; and {} more", reasons[..3].join("; "), n - 3)),
    }
}

fn join(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r} ({m})"),
        (Some(r), _) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => "waiting".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec};
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(generation: i64, wanted: i32, status: DeploymentStatus) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(wanted),
                ..DeploymentSpec::default()
            },
            status: Some(status),
        }
    }

    fn counts(observed: i64, replicas: i32, updated: i32, available: i32) -> DeploymentStatus {
        DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(updated),
            available_replicas: Some(available),
            ..DeploymentStatus::default()
        }
    }

    #[test]
    fn a_rollout_is_done_only_when_every_replica_is_new_and_available() {
        let cases = [
            (
                deployment(2, 3, counts(1, 3, 3, 3)),
                "waiting for the deployment spec update to be observed",
            ),
            (
                deployment(2, 3, counts(2, 4, 1, 3)),
                "1 of 3 new replicas updated",
            ),
            (
                deployment(2, 3, counts(2, 4, 3, 3)),
                "1 old replicas pending termination",
            ),
            (
                deployment(2, 3, counts(2, 3, 3, 2)),
                "2 of 3 updated replicas available",
            ),
        ];
        for (d, waiting) in cases {
            assert_eq!(status(&d), Rollout::Waiting(waiting.to_owned()));
        }
        assert_eq!(status(&deployment(2, 3, counts(2, 3, 3, 3))), Rollout::Done);
        assert_eq!(status(&deployment(2, 0, counts(2, 0, 0, 0))), Rollout::Done);
    }

    #[test]
    fn the_progress_deadline_fails_a_rollout() {
        let mut s = counts(2, 4, 3, 1);
        s.conditions = Some(vec![DeploymentCondition {
            type_: Some("Progressing".to_owned()),
            status: Some("False".to_owned()),
            reason: Some("ProgressDeadlineExceeded".to_owned()),
            message: Some("ReplicaSet \"demo-web-abc\" has timed out progressing.".to_owned()),
            ..DeploymentCondition::default()
        }]);
        assert_eq!(
            status(&deployment(2, 3, s)),
            Rollout::Failed("ReplicaSet \"demo-web-abc\" has timed out progressing.".to_owned())
        );
    }

    #[test]
    fn replica_set_trouble_says_why_no_pod_was_made() {
        use k8s_openapi::api::apps::v1::{ReplicaSetCondition, ReplicaSetStatus};
        let refused = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("demo-web-abc".to_owned()),
                ..ObjectMeta::default()
            },
            status: Some(ReplicaSetStatus {
                conditions: Some(vec![ReplicaSetCondition {
                    type_: Some("ReplicaFailure".to_owned()),
                    status: Some("True".to_owned()),
                    reason: Some("FailedCreate".to_owned()),
                    message: Some(
                        "pods \"demo-web-abc-x\" is forbidden: violates PodSecurity".to_owned(),
                    ),
                    ..ReplicaSetCondition::default()
                }]),
                ..ReplicaSetStatus::default()
            }),
            ..ReplicaSet::default()
        };
        assert_eq!(
            replica_set_trouble(&[refused]).as_deref(),
            Some(
                "ReplicaSet demo-web-abc FailedCreate (pods \"demo-web-abc-x\" is forbidden: violates PodSecurity)"
            )
        );
        assert_eq!(replica_set_trouble(&[ReplicaSet::default()]), None);
    }

    #[test]
    fn pod_trouble_names_the_pods_and_what_holds_them() {
        let pod = |name: &str, status: PodStatus| Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            status: Some(status),
            ..Pod::default()
        };
        let unready = PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: "False".to_owned(),
                reason: Some("ContainersNotReady".to_owned()),
                message: Some("containers with unready status: [app]".to_owned()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        };
        let pulling = PodStatus {
            container_statuses: Some(vec![ContainerStatus {
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("ImagePullBackOff".to_owned()),
                        message: Some("Back-off pulling image".to_owned()),
                    }),
                    ..ContainerState::default()
                }),
                ..ContainerStatus::default()
            }]),
            ..unready.clone()
        };
        assert_eq!(
            pod_trouble(&[pod("demo-web-1", unready), pod("demo-web-2", pulling)]).as_deref(),
            Some(
                "pod demo-web-1 not ready: ContainersNotReady (containers with unready status: [app]); pod demo-web-2 ImagePullBackOff (Back-off pulling image)"
            )
        );
        assert_eq!(pod_trouble(&[pod("fine", PodStatus::default())]), None);
    }
}
