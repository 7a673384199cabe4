//! The typed client of the `/v1` API: one method per endpoint, and one error type that
//! every failure (an error body, an odd answer, an unreachable server) becomes.

use std::error::Error as _;
use std::io;

use std::collections::BTreeMap;

use api_types::{
    AddCertificate, AddCollaborator, AddDomain, AddKey, ApiToken, App, AppInfo, AppPatch,
    Autoscale, Build, Collaborator, Config, ConfigChanged, ConfigPatch, CreateApp, CreateBuild,
    CreateTestRun, CreateToken, CreatedToken, Credentials, Domain, ErrorBody, Event, HealthChecks,
    Limits, PlatformInfo, Process, ProcessCount, Release, ReleaseInfo, Restart, Rollback, Routing,
    RoutingPatch, RunCommand, Scale, Session, SetHealthCheck, SshKey, TestRun, User,
};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

/// Why a call failed; its Display is the one line `slip` prints after `error: `.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The server refused, saying why in an error body.
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The server failed without an error body (such as a proxy's 502 page).
    #[error("the server answered {status}")]
    Status { status: StatusCode },
    #[error("cannot reach {url}: {reason}{hint}")]
    Unreachable {
        url: String,
        reason: String,
        hint: &'static str,
    },
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
}

impl ClientError {
    /// The API's error code, such as `not_found`, when the server sent one.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

type Result<T> = std::result::Result<T, ClientError>;

/// A client of one platform, logged in or not.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: Url,
    /// The base URL as the user gave it, for messages.
    shown: String,
    token: Option<String>,
}

/// How long a streamed response (`logs -f`, `run`) may last.
const STREAM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

impl Client {
    pub(crate) fn new(base_url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let base = parse_base_url(base_url)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("slip/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            // The server gives up on a request after 60 s; this only guards against a hang.
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot set up HTTP: {}", reason(&e)))?;
        let shown = base_url.trim_end_matches('/').to_owned();
        Ok(Client {
            http,
            base,
            shown,
            token,
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("parse_base_url accepts only http(s) URLs, which have paths")
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        url
    }

    /// A listing's URL, with `?limit=N` when a limit is given.
    fn page_url(&self, segments: &[&str], limit: Option<u32>) -> Url {
        let mut url = self.url(segments);
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.request_to(method, self.url(segments))
    }

    fn request_to(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<Vec<u8>> {
        let response = request.send().await.map_err(|e| self.request_error(&e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| self.request_error(&e))?;
        if status.is_success() {
            Ok(body.to_vec())
        } else {
            Err(decode_error(status, &body))
        }
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let body = self.send(request).await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            url: self.shown.clone(),
            reason: e.to_string(),
        })
    }

    async fn empty(&self, request: RequestBuilder) -> Result<()> {
        self.send(request).await.map(drop)
    }

    fn request_error(&self, e: &reqwest::Error) -> ClientError {
        let (url, reason) = (self.shown.clone(), reason(e));
        if e.is_connect() {
            let local = matches!(self.base.host_str(), Some("localhost" | "[::1]"))
                || self.base.host_str().is_some_and(|h| h.starts_with("127."));
            let hint = if local {
                "; is `slipwayd up` running?"
            } else {
                ""
            };
            ClientError::Unreachable { url, reason, hint }
        } else {
            ClientError::Request { url, reason }
        }
    }

    pub(crate) async fn info(&self) -> Result<PlatformInfo> {
        self.json(self.request(Method::GET, &["info"])).await
    }

    pub(crate) async fn register(&self, credentials: &Credentials) -> Result<Session> {
        self.json(
            self.request(Method::POST, &["auth", "register"])
                .json(credentials),
        )
        .await
    }

    pub(crate) async fn login(&self, credentials: &Credentials) -> Result<Session> {
        self.json(
            self.request(Method::POST, &["auth", "login"])
                .json(credentials),
        )
        .await
    }

    pub(crate) async fn logout(&self) -> Result<()> {
        self.empty(self.request(Method::POST, &["auth", "logout"]))
            .await
    }

    pub(crate) async fn whoami(&self) -> Result<User> {
        self.json(self.request(Method::GET, &["auth", "whoami"]))
            .await
    }

    pub(crate) async fn keys(&self) -> Result<Vec<SshKey>> {
        self.json(self.request(Method::GET, &["keys"])).await
    }

    pub(crate) async fn add_key(&self, key: &AddKey) -> Result<SshKey> {
        self.json(self.request(Method::POST, &["keys"]).json(key))
            .await
    }

    pub(crate) async fn remove_key(&self, key: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["keys", key]))
            .await
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<ApiToken>> {
        self.json(self.request(Method::GET, &["tokens"])).await
    }

    pub(crate) async fn create_token(&self, token: &CreateToken) -> Result<CreatedToken> {
        self.json(self.request(Method::POST, &["tokens"]).json(token))
            .await
    }

    pub(crate) async fn deploy_keys(&self, app: &str) -> Result<Vec<SshKey>> {
        self.json(self.request(Method::GET, &["apps", app, "deploy-keys"]))
            .await
    }

    pub(crate) async fn add_deploy_key(&self, app: &str, key: &AddKey) -> Result<SshKey> {
        self.json(
            self.request(Method::POST, &["apps", app, "deploy-keys"])
                .json(key),
        )
        .await
    }

    pub(crate) async fn remove_deploy_key(&self, app: &str, key: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["apps", app, "deploy-keys", key]))
            .await
    }

    pub(crate) async fn revoke_token(&self, id: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["tokens", id]))
            .await
    }

    pub(crate) async fn apps(&self) -> Result<Vec<App>> {
        self.json(self.request(Method::GET, &["apps"])).await
    }

    pub(crate) async fn create_app(&self, app: &CreateApp) -> Result<App> {
        self.json(self.request(Method::POST, &["apps"]).json(app))
            .await
    }

    pub(crate) async fn app(&self, app: &str) -> Result<AppInfo> {
        self.json(self.request(Method::GET, &["apps", app])).await
    }

    pub(crate) async fn destroy_app(&self, app: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["apps", app]))
            .await
    }

    pub(crate) async fn perms(&self, app: &str) -> Result<Vec<Collaborator>> {
        self.json(self.request(Method::GET, &["apps", app, "perms"]))
            .await
    }

    pub(crate) async fn add_perm(&self, app: &str, add: &AddCollaborator) -> Result<Collaborator> {
        self.json(
            self.request(Method::POST, &["apps", app, "perms"])
                .json(add),
        )
        .await
    }

    pub(crate) async fn remove_perm(&self, app: &str, username: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["apps", app, "perms", username]))
            .await
    }

    pub(crate) async fn config(&self, app: &str) -> Result<Config> {
        self.json(self.request(Method::GET, &["apps", app, "config"]))
            .await
    }

    pub(crate) async fn patch_config(
        &self,
        app: &str,
        patch: &ConfigPatch,
    ) -> Result<ConfigChanged> {
        self.json(
            self.request(Method::PATCH, &["apps", app, "config"])
                .json(patch),
        )
        .await
    }

    pub(crate) async fn releases(&self, app: &str, limit: Option<u32>) -> Result<Vec<Release>> {
        let url = self.page_url(&["apps", app, "releases"], limit);
        self.json(self.request_to(Method::GET, url)).await
    }

    pub(crate) async fn events(&self, app: &str, limit: Option<u32>) -> Result<Vec<Event>> {
        let url = self.page_url(&["apps", app, "events"], limit);
        self.json(self.request_to(Method::GET, url)).await
    }

    pub(crate) async fn all_events(&self, limit: Option<u32>) -> Result<Vec<Event>> {
        let url = self.page_url(&["events"], limit);
        self.json(self.request_to(Method::GET, url)).await
    }

    pub(crate) async fn pipeline_events(
        &self,
        pipeline: &str,
        limit: Option<u32>,
    ) -> Result<Vec<Event>> {
        let url = self.page_url(&["pipelines", pipeline, "events"], limit);
        self.json(self.request_to(Method::GET, url)).await
    }

    pub(crate) async fn pipelines(&self) -> Result<Vec<api_types::PipelineSummary>> {
        self.json(self.request(Method::GET, &["pipelines"])).await
    }

    pub(crate) async fn pipeline(&self, name: &str) -> Result<api_types::Pipeline> {
        self.json(self.request(Method::GET, &["pipelines", name]))
            .await
    }

    pub(crate) async fn create_pipeline(&self, name: &str) -> Result<api_types::Pipeline> {
        let body = api_types::CreatePipeline {
            name: name.to_owned(),
        };
        self.json(self.request(Method::POST, &["pipelines"]).json(&body))
            .await
    }

    pub(crate) async fn destroy_pipeline(&self, name: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["pipelines", name]))
            .await
    }

    pub(crate) async fn add_to_pipeline(
        &self,
        pipeline: &str,
        add: &api_types::AddPipelineApp,
    ) -> Result<api_types::Pipeline> {
        self.json(
            self.request(Method::POST, &["pipelines", pipeline, "apps"])
                .json(add),
        )
        .await
    }

    pub(crate) async fn remove_from_pipeline(&self, pipeline: &str, app: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["pipelines", pipeline, "apps", app]))
            .await
    }

    pub(crate) async fn set_stage_gates(
        &self,
        pipeline: &str,
        stage: &str,
        patch: &api_types::StageGatesPatch,
    ) -> Result<api_types::Pipeline> {
        self.json(
            self.request(Method::PATCH, &["pipelines", pipeline, "stages", stage])
                .json(patch),
        )
        .await
    }

    pub(crate) async fn promote(
        &self,
        app: &str,
        promote: &api_types::Promote,
    ) -> Result<Vec<api_types::Promotion>> {
        self.json(
            self.request(Method::POST, &["apps", app, "promote"])
                .json(promote),
        )
        .await
    }

    pub(crate) async fn promotions(&self, pipeline: &str) -> Result<Vec<api_types::Promotion>> {
        self.json(self.request(Method::GET, &["pipelines", pipeline, "promotions"]))
            .await
    }

    /// `decision` is `approve` or `reject`.
    pub(crate) async fn decide_promotion(
        &self,
        number: u64,
        decision: &str,
    ) -> Result<api_types::Promotion> {
        let number = number.to_string();
        self.json(self.request(Method::POST, &["promotions", &number, decision]))
            .await
    }

    pub(crate) async fn release(&self, app: &str, version: u32) -> Result<ReleaseInfo> {
        let version = version.to_string();
        self.json(self.request(Method::GET, &["apps", app, "releases", &version]))
            .await
    }

    pub(crate) async fn rollback(&self, app: &str, rollback: &Rollback) -> Result<Release> {
        self.json(
            self.request(Method::POST, &["apps", app, "rollback"])
                .json(rollback),
        )
        .await
    }

    pub(crate) async fn rebase(&self, app: &str) -> Result<api_types::Rebased> {
        self.json(self.request(Method::POST, &["apps", app, "rebase"]))
            .await
    }

    pub(crate) async fn formation(&self, app: &str) -> Result<Vec<ProcessCount>> {
        self.json(self.request(Method::GET, &["apps", app, "formation"]))
            .await
    }

    pub(crate) async fn scale(&self, app: &str, scale: &Scale) -> Result<Vec<ProcessCount>> {
        self.json(
            self.request(Method::PATCH, &["apps", app, "formation"])
                .json(scale),
        )
        .await
    }

    pub(crate) async fn health_checks(&self, app: &str) -> Result<BTreeMap<String, HealthChecks>> {
        self.json(self.request(Method::GET, &["apps", app, "healthchecks"]))
            .await
    }

    pub(crate) async fn set_health_check(
        &self,
        app: &str,
        process_type: &str,
        kind: &str,
        check: &SetHealthCheck,
    ) -> Result<BTreeMap<String, HealthChecks>> {
        self.json(
            self.request(
                Method::PUT,
                &["apps", app, "healthchecks", process_type, kind],
            )
            .json(check),
        )
        .await
    }

    /// Removes one health check of a type, or both when `kind` is `None`.
    pub(crate) async fn unset_health_check(
        &self,
        app: &str,
        process_type: &str,
        kind: Option<&str>,
    ) -> Result<BTreeMap<String, HealthChecks>> {
        let mut segments = vec!["apps", app, "healthchecks", process_type];
        segments.extend(kind);
        self.json(self.request(Method::DELETE, &segments)).await
    }

    pub(crate) async fn limits(&self, app: &str) -> Result<BTreeMap<String, Limits>> {
        self.json(self.request(Method::GET, &["apps", app, "limits"]))
            .await
    }

    pub(crate) async fn set_limits(
        &self,
        app: &str,
        process_type: &str,
        limits: &Limits,
    ) -> Result<BTreeMap<String, Limits>> {
        self.json(
            self.request(Method::PUT, &["apps", app, "limits", process_type])
                .json(limits),
        )
        .await
    }

    /// Removes the memory limit, the CPU limit, or (neither asked for) both.
    pub(crate) async fn unset_limits(
        &self,
        app: &str,
        process_type: &str,
        memory: bool,
        cpu: bool,
    ) -> Result<BTreeMap<String, Limits>> {
        let mut url = self.url(&["apps", app, "limits", process_type]);
        for (name, asked) in [("memory", memory), ("cpu", cpu)] {
            if asked {
                url.query_pairs_mut().append_pair(name, "true");
            }
        }
        self.json(self.request_to(Method::DELETE, url)).await
    }

    pub(crate) async fn autoscale(&self, app: &str) -> Result<BTreeMap<String, Autoscale>> {
        self.json(self.request(Method::GET, &["apps", app, "autoscale"]))
            .await
    }

    pub(crate) async fn set_autoscale(
        &self,
        app: &str,
        process_type: &str,
        autoscale: &Autoscale,
    ) -> Result<BTreeMap<String, Autoscale>> {
        self.json(
            self.request(Method::PUT, &["apps", app, "autoscale", process_type])
                .json(autoscale),
        )
        .await
    }

    pub(crate) async fn unset_autoscale(
        &self,
        app: &str,
        process_type: &str,
    ) -> Result<BTreeMap<String, Autoscale>> {
        self.json(self.request(Method::DELETE, &["apps", app, "autoscale", process_type]))
            .await
    }

    pub(crate) async fn processes(&self, app: &str) -> Result<Vec<Process>> {
        self.json(self.request(Method::GET, &["apps", app, "processes"]))
            .await
    }

    pub(crate) async fn restart(&self, app: &str, restart: &Restart) -> Result<Vec<Process>> {
        self.json(
            self.request(Method::POST, &["apps", app, "processes", "restart"])
                .json(restart),
        )
        .await
    }

    /// The app's log as a response whose body streams while `follow` holds.
    pub(crate) async fn logs(
        &self,
        app: &str,
        lines: usize,
        process: Option<&str>,
        follow: bool,
    ) -> Result<reqwest::Response> {
        let mut url = self.url(&["apps", app, "logs"]);
        url.query_pairs_mut()
            .append_pair("lines", &lines.to_string())
            .append_pair("follow", if follow { "true" } else { "false" });
        if let Some(process) = process {
            url.query_pairs_mut().append_pair("process", process);
        }
        self.streaming(self.request_to(Method::GET, url)).await
    }

    /// Starts a one-off process; the response streams its [`api_types::RunEvent`]s.
    pub(crate) async fn run(&self, app: &str, command: &RunCommand) -> Result<reqwest::Response> {
        self.streaming(
            self.request(Method::POST, &["apps", app, "run"])
                .json(command),
        )
        .await
    }

    /// Sends a request whose response body may stream for as long as it takes.
    async fn streaming(&self, request: RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .timeout(STREAM_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.request_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(|e| self.request_error(&e))?;
        Err(decode_error(status, &body))
    }

    pub(crate) async fn test_runs(&self, app: &str, limit: Option<u32>) -> Result<Vec<TestRun>> {
        let url = self.page_url(&["apps", app, "test-runs"], limit);
        self.json(self.request_to(Method::GET, url)).await
    }

    pub(crate) async fn test_run(&self, app: &str, number: u64) -> Result<TestRun> {
        let number = number.to_string();
        self.json(self.request(Method::GET, &["apps", app, "test-runs", &number]))
            .await
    }

    /// Tests a build again; the response streams NDJSON `RunEvent`s.
    pub(crate) async fn create_test_run(
        &self,
        app: &str,
        run: &CreateTestRun,
    ) -> Result<reqwest::Response> {
        self.streaming(
            self.request(Method::POST, &["apps", app, "test-runs"])
                .json(run),
        )
        .await
    }

    pub(crate) async fn builds(&self, app: &str, limit: Option<u32>) -> Result<Vec<Build>> {
        let url = self.page_url(&["apps", app, "builds"], limit);
        self.json(self.request_to(Method::GET, url)).await
    }

    pub(crate) async fn create_build(&self, app: &str, build: &CreateBuild) -> Result<Release> {
        self.json(
            self.request(Method::POST, &["apps", app, "builds"])
                .json(build),
        )
        .await
    }

    pub(crate) async fn build(&self, app: &str, id: &str) -> Result<Build> {
        self.json(self.request(Method::GET, &["apps", app, "builds", id]))
            .await
    }

    pub(crate) async fn domains(&self, app: &str) -> Result<Vec<Domain>> {
        self.json(self.request(Method::GET, &["apps", app, "domains"]))
            .await
    }

    pub(crate) async fn add_domain(&self, app: &str, add: &AddDomain) -> Result<Domain> {
        self.json(
            self.request(Method::POST, &["apps", app, "domains"])
                .json(add),
        )
        .await
    }

    pub(crate) async fn purge_build_cache(&self, app: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["apps", app, "builds", "cache"]))
            .await
    }

    pub(crate) async fn verify_domain(&self, app: &str, domain: &str) -> Result<Domain> {
        self.json(self.request(Method::POST, &["apps", app, "domains", domain, "verify"]))
            .await
    }

    pub(crate) async fn remove_domain(&self, app: &str, domain: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["apps", app, "domains", domain]))
            .await
    }

    pub(crate) async fn routing(&self, app: &str) -> Result<Routing> {
        self.json(self.request(Method::GET, &["apps", app, "routing"]))
            .await
    }

    pub(crate) async fn patch_app(&self, app: &str, patch: &AppPatch) -> Result<App> {
        self.json(self.request(Method::PATCH, &["apps", app]).json(patch))
            .await
    }

    pub(crate) async fn patch_routing(&self, app: &str, patch: &RoutingPatch) -> Result<Routing> {
        self.json(
            self.request(Method::PATCH, &["apps", app, "routing"])
                .json(patch),
        )
        .await
    }

    pub(crate) async fn certs(&self, app: &str) -> Result<Vec<api_types::Certificate>> {
        self.json(self.request(Method::GET, &["apps", app, "certs"]))
            .await
    }

    pub(crate) async fn add_cert(
        &self,
        app: &str,
        add: &AddCertificate,
    ) -> Result<api_types::Certificate> {
        self.json(
            self.request(Method::POST, &["apps", app, "certs"])
                .json(add),
        )
        .await
    }

    pub(crate) async fn cert(&self, app: &str, name: &str) -> Result<api_types::Certificate> {
        self.json(self.request(Method::GET, &["apps", app, "certs", name]))
            .await
    }

    pub(crate) async fn remove_cert(&self, app: &str, name: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &["apps", app, "certs", name]))
            .await
    }

    /// Attaches (`attach`) or detaches the certificate for one of the app's domains.
    pub(crate) async fn attach_cert(
        &self,
        app: &str,
        name: &str,
        domain: &str,
        attach: bool,
    ) -> Result<api_types::Certificate> {
        let method = if attach { Method::PUT } else { Method::DELETE };
        self.json(self.request(method, &["apps", app, "certs", name, "domains", domain]))
            .await
    }
}

/// Accepts `http://` and `https://` URLs without a query or fragment.
pub(crate) fn parse_base_url(text: &str) -> anyhow::Result<Url> {
    let invalid =
        || anyhow::anyhow!("invalid URL `{text}`: expected one such as http://127.0.0.1:7100");
    let url = Url::parse(text).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid());
    }
    Ok(url)
}

/// The error a failed response stands for: its error body when it has one.
pub(crate) fn decode_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) if !body.error.trim().is_empty() => ClientError::Api {
            status,
            code: body.code,
            message: body.error,
        },
        _ => ClientError::Status { status },
    }
}

/// The most telling words of a transport error: the OS's reason when there is one
/// (`connection refused`), else the innermost cause.
fn reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        innermost = cause.to_string();
        source = cause.source();
    }
    innermost
}

/// `Connection refused (os error 111)` → `connection refused`.
fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    if e.raw_os_error().is_none() {
        return text;
    }
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(url, None).unwrap()
    }

    #[test]
    fn error_bodies_become_their_message() {
        let body = br#"{"error":"app demo already exists","code":"conflict"}"#;
        let err = decode_error(StatusCode::CONFLICT, body);
        assert_eq!(err.to_string(), "app demo already exists");
        assert_eq!(err.code(), Some("conflict"));
    }

    #[test]
    fn other_failures_name_the_status() {
        for body in [
            &b"<html>bad gateway</html>"[..],
            b"",
            br#"{"error":"","code":"internal"}"#,
        ] {
            let err = decode_error(StatusCode::BAD_GATEWAY, body);
            assert_eq!(err.to_string(), "the server answered 502 Bad Gateway");
            assert_eq!(err.code(), None);
        }
    }

    #[test]
    fn urls_put_each_segment_under_v1_encoded() {
        let local = client("http://127.0.0.1:7100");
        assert_eq!(
            local.url(&["keys", "ada@laptop/2 #x"]).as_str(),
            "http://127.0.0.1:7100/v1/keys/ada@laptop%2F2%20%23x"
        );
        let remote = client("https://paas.example.com/slipway/");
        assert_eq!(
            remote.url(&["apps", "demo", "config"]).as_str(),
            "https://paas.example.com/slipway/v1/apps/demo/config"
        );
        assert_eq!(
            remote
                .page_url(&["apps", "demo", "releases"], Some(5))
                .as_str(),
            "https://paas.example.com/slipway/v1/apps/demo/releases?limit=5"
        );
    }

    #[test]
    fn base_urls_must_be_http() {
        for bad in [
            "127.0.0.1:7100",
            "localhost:7100",
            "ftp://host",
            "http://host/?q=1",
            "nonsense",
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid URL `{bad}`: expected one such as http://127.0.0.1:7100")
            );
        }
        assert!(parse_base_url("https://paas.example.com").is_ok());
    }

    #[test]
    fn os_reasons_are_lowercase_without_the_errno() {
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(io_reason(&e), "connection refused");
        let e = io::Error::other("failed to lookup address information");
        assert_eq!(io_reason(&e), "failed to lookup address information");
    }

    /// A port nobody listens on: reqwest's real connect error becomes one plain line.
    #[tokio::test]
    async fn an_unreachable_server_says_so_in_one_line() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let err = client(&url).info().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot reach {url}: connection refused; is `slipwayd up` running?")
        );
    }
}
