//! Custom domains an app answers to, besides `<app>.<platform domain>`: added pending, and
//! routed only once a TXT record proves the app's owner controls the name.

use std::net::SocketAddr;
use std::time::Duration;

use api_types::{AddDomain, Domain, ErrorBody};
use axum::extract::State;
use axum::http::StatusCode;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use rand::Rng;
use tokio::sync::Semaphore;

use crate::auth::{AppCaller, Need, authorize};
use crate::extract::{Json, Path};
use crate::{ApiError, ApiState};
use crate::{actions, control, convert};

/// How many TXT values, and how many characters of each, a failed verification quotes.
const QUOTED_VALUES: usize = 3;
const QUOTED_CHARS: usize = 80;

/// DNS lookups for verifications run at once, platform-wide; more are refused, so a flood of
/// `verify` calls cannot pile up resolvers and sockets.
static LOOKUPS: Semaphore = Semaphore::const_new(16);
/// The longest one verification's lookup may take, retries included.
const LOOKUP_DEADLINE: Duration = Duration::from_secs(10);

#[utoipa::path(get, path = "/v1/apps/{app}/domains", tag = "domains", security(("token" = [])),
    params(("app" = String, Path)),
    responses((status = 200, body = Vec<Domain>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
) -> Result<Json<Vec<Domain>>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Read).await?;
    Ok(Json(
        state
            .store
            .domains(&app)
            .await?
            .into_iter()
            .map(convert::domain)
            .collect(),
    ))
}

/// Adds a custom domain, pending until `verify` finds its token in DNS. A name under the
/// platform's domain is refused, except the app's own `<app>.<domain>`, which is verified.
#[utoipa::path(post, path = "/v1/apps/{app}/domains", tag = "domains", security(("token" = [])),
    params(("app" = String, Path)), request_body = AddDomain,
    responses((status = 201, body = Domain), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path(name): Path<String>,
    body: Result<Json<AddDomain>, ApiError>,
) -> Result<(StatusCode, Json<Domain>), ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let Json(body) = body?;
    let added = actions::add_domain(&state, &app, &caller.user, &body.domain).await?;
    Ok((StatusCode::CREATED, Json(convert::domain(added))))
}

/// Looks the domain's challenge TXT record up and, when it holds the token, marks the domain
/// verified: from then on it routes.
#[utoipa::path(post, path = "/v1/apps/{app}/domains/{domain}/verify", tag = "domains", security(("token" = [])),
    params(("app" = String, Path), ("domain" = String, Path)),
    responses((status = 200, body = Domain), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn verify(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, domain)): Path<(String, String)>,
) -> Result<Json<Domain>, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    let current = state.store.domain(&app, &domain).await?;
    let store::DomainState::Pending { token } = &current.state else {
        return Ok(Json(convert::domain(current)));
    };
    let record = domain::challenge_record(&current.domain);
    let todo = format!(
        "add a TXT record {record} with the value {token}, then run `slip domains:verify {}` again",
        current.domain
    );
    let Ok(_turn) = LOOKUPS.try_acquire() else {
        return Err(ApiError::Conflict(
            "too many domain verifications are running: try again in a moment".to_owned(),
        ));
    };
    let lookup = tokio::time::timeout(
        LOOKUP_DEADLINE,
        txt_values(state.config.dns_resolver, &record),
    )
    .await
    .unwrap_or_else(|_| Err("no answer in time".to_owned()));
    match lookup {
        Ok(values) if values.iter().any(|v| v == token) => {}
        Ok(values) if values.is_empty() => {
            return Err(ApiError::Invalid(format!(
                "found no TXT record {record}: {todo}"
            )));
        }
        Ok(values) => {
            return Err(ApiError::Invalid(format!(
                "the TXT record {record} holds {} but not the token: {todo}",
                quote(&values)
            )));
        }
        Err(err) => {
            return Err(ApiError::Invalid(format!(
                "cannot look up the TXT record {record} ({err}): check the domain's DNS, then try again"
            )));
        }
    }
    let verified = state
        .store
        .verify_domain(&app, &current.domain, &caller.user)
        .await?;
    control::hosts(&state, &app.name).await?;
    Ok(Json(convert::domain(verified)))
}

#[utoipa::path(delete, path = "/v1/apps/{app}/domains/{domain}", tag = "domains", security(("token" = [])),
    params(("app" = String, Path), ("domain" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<ApiState>,
    caller: AppCaller,
    Path((name, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = authorize(&state, &caller, &name, Need::Write).await?;
    actions::remove_domain(&state, &app, &caller.user, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A verification token: 128 random bits in hex, recognisable by its prefix.
pub(crate) fn new_verification_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("slipway-verify-{}", hex::encode(bytes))
}

/// The TXT values at `record` (each record's strings joined), asking `server` or the
/// system's resolvers; none when the name or the record does not exist. The answer comes
/// from a zone the tenant controls: it is only compared and quoted, never trusted further.
async fn txt_values(server: Option<SocketAddr>, record: &str) -> Result<Vec<String>, String> {
    let mut builder = match server {
        Some(addr) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = addr.port();
                    c
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![NameServerConfig::new(
                    addr.ip(),
                    true,
                    connections,
                )]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
    };
    let options = builder.options_mut();
    options.timeout = Duration::from_secs(4);
    options.attempts = 2;
    options.use_hosts_file = ResolveHosts::Never;
    let resolver = builder.build().map_err(|e| e.to_string())?;
    // Fully qualified, so no search domain is appended.
    match resolver.txt_lookup(format!("{record}.")).await {
        Ok(lookup) => Ok(lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// A few of the values found, each cut short and escaped, so the one-line error stays one
/// short line whatever the zone holds.
fn quote(values: &[String]) -> String {
    let mut quoted: Vec<String> = values
        .iter()
        .take(QUOTED_VALUES)
        .map(|v| {
            let cut: String = v.chars().take(QUOTED_CHARS).collect();
            let more = if cut.len() < v.len() { "…" } else { "" };
            format!("{cut:?}{more}")
        })
        .collect();
    if values.len() > QUOTED_VALUES {
        quoted.push(format!("and {} more", values.len() - QUOTED_VALUES));
    }
    quoted.join(", ")
}
