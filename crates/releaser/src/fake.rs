//! A [`Runtime`] that runs nothing and remembers everything it was asked, in order: the
//! release manager's rules are tested against it in milliseconds, without processes.
//!
//! It behaves as a runtime should: a deploy that fails leaves the app on what it ran, the
//! release it deployed last is [`Runtime::current`], and its processes are the formation's.
//! Tests tell it how the next deploy or one-off run goes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use domain::{AppName, Formation, ImageRef, ReleaseVersion};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::{Lines, ProcessInfo, ProcessState, ReleaseSpec, Routing, Runtime, RuntimeError};

/// One thing the release manager asked of the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    RunOnce {
        app: AppName,
        version: ReleaseVersion,
        command: String,
        source: String,
    },
    /// A test run's command, with the config it was given.
    RunTest {
        app: AppName,
        command: String,
        source: String,
        config: Vec<(String, String)>,
    },
    /// Recorded whether the deploy succeeded or not.
    Deploy {
        app: AppName,
        version: ReleaseVersion,
        image: ImageRef,
        /// `web=1 worker=2`, in type order.
        formation: String,
    },
    Scale {
        app: AppName,
        formation: String,
    },
    Restart {
        app: AppName,
        process_type: Option<String>,
    },
    SetHosts {
        app: AppName,
        hosts: Vec<String>,
    },
    Stop {
        app: AppName,
    },
}

/// What the fake runs for an app: the release it deployed last, at which scale.
#[derive(Debug, Clone)]
struct Running {
    spec: ReleaseSpec,
    formation: Formation,
    restarts: u32,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    running: HashMap<AppName, Running>,
    hosts: HashMap<AppName, Vec<String>>,
    routing: HashMap<AppName, Routing>,
    deploys: VecDeque<RuntimeError>,
    runs: VecDeque<Run>,
}

/// How a one-off run the test prepared goes.
#[derive(Debug)]
enum Run {
    Exit(i32),
    Fail(RuntimeError),
    /// It says it started, then waits for the test to end it (with a status).
    Held {
        started: oneshot::Sender<()>,
        finish: oneshot::Receiver<i32>,
    },
}

/// A one-off run held by [`FakeRuntime::hold_next_run`]: the test looks at the world while
/// it runs, then ends it.
#[derive(Debug)]
pub struct HeldRun {
    started: Option<oneshot::Receiver<()>>,
    finish: oneshot::Sender<i32>,
}

impl HeldRun {
    /// Waits until the run has begun (the runtime was asked to run it).
    pub async fn started(&mut self) {
        if let Some(started) = self.started.take() {
            started
                .await
                .expect("the fake runtime never drops a held run unstarted");
        }
    }

    /// Ends the run with `status`.
    pub fn finish(self, status: i32) {
        let _ = self.finish.send(status);
    }
}

/// A runtime for tests. Deploys succeed and one-off runs exit 0 unless told otherwise.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// The next deploy fails with `err` (after it is recorded); later ones succeed again.
    /// Called more than once, that many deploys fail, in order.
    pub fn fail_next_deploy(&self, err: RuntimeError) {
        self.state().deploys.push_back(err);
    }

    /// The next one-off run (a release command or `slip run`) exits with `status`.
    pub fn exit_next_run(&self, status: i32) {
        self.state().runs.push_back(Run::Exit(status));
    }

    /// The next one-off run starts and then waits until the returned [`HeldRun`] ends it.
    pub fn hold_next_run(&self) -> HeldRun {
        let (started_tx, started_rx) = oneshot::channel();
        let (finish_tx, finish_rx) = oneshot::channel();
        self.state().runs.push_back(Run::Held {
            started: started_tx,
            finish: finish_rx,
        });
        HeldRun {
            started: Some(started_rx),
            finish: finish_tx,
        }
    }

    /// The next one-off run does not start: it fails with `err`.
    pub fn fail_next_run(&self, err: RuntimeError) {
        self.state().runs.push_back(Run::Fail(err));
    }

    /// Everything asked of the runtime so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The deploys asked for so far, failed ones included, as `app vN web=1` lines.
    pub fn deploys(&self) -> Vec<String> {
        self.state()
            .calls
            .iter()
            .filter_map(|call| match call {
                Call::Deploy {
                    app,
                    version,
                    formation,
                    ..
                } => Some(format!("{app} {version} {formation}")),
                _ => None,
            })
            .collect()
    }

    /// The host names last given for `app`.
    pub fn hosts(&self, app: &AppName) -> Vec<String> {
        self.state().hosts.get(app).cloned().unwrap_or_default()
    }

    /// The routing last given for `app`: hosts, certificates and switches.
    pub fn routing(&self, app: &AppName) -> Option<Routing> {
        self.state().routing.get(app).cloned()
    }

    /// The release `app` runs, as [`Runtime::current`] says, without recording a call.
    pub fn running(&self, app: &AppName) -> Option<ReleaseVersion> {
        self.state().running.get(app).map(|r| r.spec.version)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("never poisoned")
    }
}

/// `web=1 worker=2`.
fn describe(formation: &Formation) -> String {
    let parts: Vec<String> = formation.iter().map(|(t, n)| format!("{t}={n}")).collect();
    parts.join(" ")
}

fn nothing_runs(app: &AppName) -> RuntimeError {
    RuntimeError::Invalid(format!("{app} runs nothing: deploy a release first"))
}

/// How a one-off the fake was told about ends: exit 0 when it was told nothing.
async fn finish(run: Option<Run>) -> Result<i32, RuntimeError> {
    match run {
        None => Ok(0),
        Some(Run::Exit(status)) => Ok(status),
        Some(Run::Fail(err)) => Err(err),
        Some(Run::Held { started, finish }) => {
            let _ = started.send(());
            finish
                .await
                .map_err(|_| RuntimeError::Runtime("the held run was dropped".to_owned()))
        }
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn run_once(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        _output: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        let run = {
            let mut state = self.state();
            state.calls.push(Call::RunOnce {
                app: spec.app.clone(),
                version: spec.version,
                command: command.to_owned(),
                source: source.to_owned(),
            });
            state.runs.pop_front()
        };
        finish(run).await
    }

    async fn run_test(
        &self,
        spec: &ReleaseSpec,
        command: &str,
        source: &str,
        output: Lines<'_>,
    ) -> Result<i32, RuntimeError> {
        output(&format!("running {command}"));
        let run = {
            let mut state = self.state();
            state.calls.push(Call::RunTest {
                app: spec.app.clone(),
                command: command.to_owned(),
                source: source.to_owned(),
                config: spec
                    .config
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_owned()))
                    .collect(),
            });
            state.runs.pop_front()
        };
        finish(run).await
    }

    async fn deploy(
        &self,
        spec: &ReleaseSpec,
        formation: &Formation,
        _previous: Option<&ReleaseSpec>,
        _progress: Lines<'_>,
    ) -> Result<(), RuntimeError> {
        let mut state = self.state();
        state.calls.push(Call::Deploy {
            app: spec.app.clone(),
            version: spec.version,
            image: spec.image.clone(),
            formation: describe(formation),
        });
        if let Some(err) = state.deploys.pop_front() {
            return Err(err);
        }
        state.running.insert(
            spec.app.clone(),
            Running {
                spec: spec.clone(),
                formation: formation.clone(),
                restarts: 0,
            },
        );
        Ok(())
    }

    async fn current(&self, app: &AppName) -> Result<Option<ReleaseVersion>, RuntimeError> {
        Ok(self.running(app))
    }

    async fn scale(&self, spec: &ReleaseSpec, formation: &Formation) -> Result<(), RuntimeError> {
        let app = &spec.app;
        let mut state = self.state();
        state.calls.push(Call::Scale {
            app: app.clone(),
            formation: describe(formation),
        });
        if let Some(running) = state.running.get_mut(app) {
            running.formation = formation.clone();
        }
        Ok(())
    }

    async fn restart(&self, app: &AppName, process_type: Option<&str>) -> Result<(), RuntimeError> {
        let mut state = self.state();
        state.calls.push(Call::Restart {
            app: app.clone(),
            process_type: process_type.map(str::to_owned),
        });
        let running = state
            .running
            .get_mut(app)
            .ok_or_else(|| nothing_runs(app))?;
        if let Some(t) = process_type
            && running.spec.processes.command(t).is_none()
        {
            return Err(RuntimeError::Invalid(format!(
                "no process of type {t} in {}",
                running.spec.version
            )));
        }
        running.restarts += 1;
        Ok(())
    }

    async fn processes(&self, app: &AppName) -> Result<Vec<ProcessInfo>, RuntimeError> {
        let state = self.state();
        let Some(running) = state.running.get(app) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (process_type, count) in running.formation.iter() {
            let command = running
                .spec
                .processes
                .command(process_type.as_str())
                .unwrap_or_default();
            for index in 1..=count {
                out.push(ProcessInfo {
                    name: format!("{process_type}.{index}"),
                    process_type: process_type.to_string(),
                    command: command.to_owned(),
                    release: running.spec.version,
                    state: ProcessState::Up,
                    since: OffsetDateTime::UNIX_EPOCH,
                    restarts: running.restarts,
                });
            }
        }
        Ok(out)
    }

    async fn set_routing(&self, app: &AppName, routing: &Routing) -> Result<(), RuntimeError> {
        let hosts: Vec<String> = routing.hosts.iter().map(|h| h.name.clone()).collect();
        let mut state = self.state();
        state.calls.push(Call::SetHosts {
            app: app.clone(),
            hosts: hosts.clone(),
        });
        state.hosts.insert(app.clone(), hosts);
        state.routing.insert(app.clone(), routing.clone());
        Ok(())
    }

    async fn stop(&self, app: &AppName) -> Result<(), RuntimeError> {
        let mut state = self.state();
        state.calls.push(Call::Stop { app: app.clone() });
        state.running.remove(app);
        Ok(())
    }
}
