//! Headless Chromium per test, driven over WebDriver: Debian's `chromedriver` on a free
//! loopback port ([`Browser`]), any number of browser sessions through it ([`Session`], a
//! [`fantoccini::Client`] with helpers), Chrome DevTools Protocol commands for what WebDriver
//! lacks (dark mode, an exact phone viewport, HttpOnly cookies, full-page screenshots), and
//! the folder a test saves its screenshots in for review ([`test_output_dir`]).
//!
//! `chromium` and `chromium-driver` come from Debian; `scripts/test` installs them. Without
//! them [`Browser::start`] fails, naming the packages, rather than letting a browser test pass
//! without having run; tests call [`skip`] first so that `SLIPWAY_TEST_BROWSER=skip` skips
//! them on purpose.
//!
//! Nothing outlives the test, even a panicking one: chromedriver leads its own process group,
//! which holds every browser it starts, and dies with the test process (`setpriv
//! --pdeathsig`); dropping the last of a [`Browser`] and its sessions kills the group. A
//! [`Session`] runs its browser on a profile directory of its own, and dropping it unclosed
//! kills every process started with that profile and removes the directory.

use std::ops::Deref;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use fantoccini::cookies::Cookie;
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::Error;
use crate::cluster::{dying_with_tests, free_ports, spawner, tail};

type Result<T, E = Error> = std::result::Result<T, E>;

/// Set to `skip` to skip the browser tests on purpose.
pub const SKIP_VAR: &str = "SLIPWAY_TEST_BROWSER";

/// The environment variable naming the folder tests save their output (screenshots) under;
/// `<workspace>/target/test-output` when unset.
pub const OUTPUT_VAR: &str = "SLIPWAY_TEST_OUTPUT";

/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Debian's chromium (package `chromium`): a shell wrapper around `/usr/lib/chromium/chromium`.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long [`Browser::start`] waits for chromedriver to answer (it takes 15–70 ms).
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// The flags every browser runs with. `--no-sandbox`: the tests run as root, and Chromium
/// refuses to start its sandbox as root ("Chrome instance exited" at once); the pages are the
/// test's own, so the sandbox guards nothing here. `--disable-dev-shm-usage`: a container's
/// small `/dev/shm` crashes renderers. `--hide-scrollbars`: screenshots as wide as the
/// viewport, with no scrollbar that comes and goes between them. `--remote-debugging-pipe`:
/// chromedriver talks to the browser over a pipe instead of a port, and the browser quits when
/// the pipe closes, so a chromedriver killed with the test process takes its browsers along
/// (on a port they would run on). The window size is only a start: [`Session`] sets the exact
/// viewport with [`Viewport`].
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
];

/// True when the browser tests are skipped on purpose (`SLIPWAY_TEST_BROWSER=skip`); says so
/// on stderr. Call it first in a test that needs a browser and return if true.
pub fn skip() -> bool {
    let skipped = std::env::var(SKIP_VAR).as_deref() == Ok("skip");
    if skipped {
        eprintln!("browser test skipped: {SKIP_VAR}=skip");
    }
    skipped
}

/// A running chromedriver. Every [`Session`] keeps it alive; the last of them to drop kills it
/// and every browser it started.
#[derive(Debug)]
pub struct Browser {
    driver: Arc<Chromedriver>,
}

/// The chromedriver process, its WebDriver URL and its directory (log, browser profiles).
#[derive(Debug)]
struct Chromedriver {
    child: Mutex<Child>,
    pid: u32,
    url: String,
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and waits until it takes sessions.
    pub async fn start() -> Result<Browser> {
        crate::init();
        for binary in [CHROMEDRIVER, CHROMIUM] {
            if !tokio::fs::try_exists(binary).await.unwrap_or(false) {
                return Err(Error::BrowserMissing {
                    path: PathBuf::from(binary),
                });
            }
        }
        let dir = tokio::task::spawn_blocking(|| {
            tempfile::Builder::new()
                .prefix("slipway-browser-")
                .tempdir()
        })
        .await
        .expect("creating a directory does not panic")
        .map_err(|source| Error::Io {
            what: "cannot create a directory for chromedriver".into(),
            source,
        })?;
        let log = dir.path().join("chromedriver.log");
        let out = tokio::fs::File::create(&log)
            .await
            .map_err(|source| Error::Io {
                what: format!("cannot create {}", log.display()),
                source,
            })?
            .into_std()
            .await;
        let err = out.try_clone().map_err(|source| Error::Io {
            what: format!("cannot reopen {}", log.display()),
            source,
        })?;
        let port = free_ports(1)?[0];
        let mut command = dying_with_tests(Path::new(CHROMEDRIVER)).await;
        command
            .arg(format!("--port={port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let (reply, spawned) = tokio::sync::oneshot::channel();
        spawner()
            .send((command, reply))
            .expect("the spawner thread runs as long as the process");
        let child = spawned
            .await
            .expect("the spawner thread answers every request")
            .map_err(|source| Error::Io {
                what: format!("cannot start {CHROMEDRIVER}"),
                source,
            })?;
        let driver = Arc::new(Chromedriver {
            pid: child.id(),
            child: Mutex::new(child),
            url: format!("http://127.0.0.1:{port}"),
            dir,
        });
        driver.wait_ready(&log).await?;
        Ok(Browser { driver })
    }

    /// chromedriver's process id; it leads the process group every browser runs in.
    pub fn chromedriver_pid(&self) -> u32 {
        self.driver.pid
    }

    /// A new browser session: its own browser process and profile (cookies, storage), the
    /// desktop viewport and the light colour scheme. Sessions are independent, as two people
    /// on two machines would be.
    pub async fn session(&self) -> Result<Session> {
        let parent = self.driver.dir.path().to_owned();
        let profile = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix("profile-")
                .tempdir_in(parent)
        })
        .await
        .expect("creating a directory does not panic")
        .map_err(|source| Error::Io {
            what: "cannot create a browser profile directory".into(),
            source,
        })?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let connected = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.driver.url)
            .await;
        let client = match connected {
            Ok(client) => client,
            Err(source) => {
                // A browser that started and then failed to answer would still run.
                tokio::task::spawn_blocking(move || end_profile(profile))
                    .await
                    .expect("killing processes does not panic");
                return Err(Error::NewSession(Box::new(source)));
            }
        };
        let browser_pid = client
            .capabilities()
            .and_then(|caps| caps.get("goog:processID"))
            .and_then(Value::as_u64)
            .and_then(|pid| u32::try_from(pid).ok());
        let session = Session {
            client,
            profile: Some(profile),
            browser_pid,
            _driver: Arc::clone(&self.driver),
        };
        session.set_viewport(Viewport::Desktop).await?;
        Ok(session)
    }
}

impl Chromedriver {
    /// Polls `/status` until it says `"ready": true`, chromedriver exits, or the deadline.
    async fn wait_ready(&self, log: &Path) -> Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        let status = format!("{}/status", self.url);
        let deadline = Instant::now() + START_DEADLINE;
        let mut pause = Duration::from_millis(5);
        loop {
            let exited = self
                .child
                .lock()
                .expect("the chromedriver lock is not poisoned")
                .try_wait()
                .ok()
                .flatten();
            if let Some(status) = exited {
                return Err(Error::Chromedriver {
                    problem: format!("exited ({status}) as it started"),
                    tail: tail(log, 20).await,
                });
            }
            if let Ok(response) = http.get(&status).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == Value::Bool(true)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Chromedriver {
                    problem: format!(
                        "did not answer {status} within {}s",
                        START_DEADLINE.as_secs()
                    ),
                    tail: tail(log, 20).await,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group holds chromedriver and every browser it started (they do not leave it).
        let Some(group) = rustix::process::Pid::from_raw(self.pid as i32) else {
            return;
        };
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        while !processes_in_group(self.pid).is_empty() && Instant::now() < until {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(2));
        }
        // The TempDir removes the log and the profiles as it drops.
    }
}

/// A colour scheme for `prefers-color-scheme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorScheme {
    Light,
    Dark,
}

impl ColorScheme {
    /// The name used in screenshot file names and in CSS: `light` or `dark`.
    pub fn name(self) -> &'static str {
        match self {
            ColorScheme::Light => "light",
            ColorScheme::Dark => "dark",
        }
    }
}

/// A viewport the page is laid out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// 1280x800 CSS pixels, a laptop.
    Desktop,
    /// 390x844 CSS pixels as a mobile device (the `<meta name="viewport">` applies), a phone.
    Phone,
}

impl Viewport {
    /// The name used in screenshot file names: `desktop` or `phone`.
    pub fn name(self) -> &'static str {
        match self {
            Viewport::Desktop => "desktop",
            Viewport::Phone => "phone",
        }
    }

    /// Width and height in CSS pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Viewport::Desktop => (1280, 800),
            Viewport::Phone => (390, 844),
        }
    }
}

/// One browser: a [`fantoccini::Client`] (it derefs to one: `goto`, `find`, `execute`,
/// `get_all_cookies`, …) and helpers. Call [`Session::close`] at the end; dropping it unclosed
/// (a failed test) kills its browser instead.
#[derive(Debug)]
pub struct Session {
    client: Client,
    profile: Option<tempfile::TempDir>,
    browser_pid: Option<u32>,
    _driver: Arc<Chromedriver>,
}

impl Deref for Session {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Session {
    /// Ends the session (the browser quits) and makes sure no process of it is left.
    pub async fn close(mut self) -> Result<()> {
        let closed = self.client.clone().close().await;
        if let Some(profile) = self.profile.take() {
            tokio::task::spawn_blocking(move || end_profile(profile))
                .await
                .expect("killing processes does not panic");
        }
        closed.map_err(webdriver("close the browser session"))
    }

    /// The browser's main process id, as chromedriver reports it.
    pub fn browser_pid(&self) -> Option<u32> {
        self.browser_pid
    }

    /// The browser's profile directory; every process of this browser has it on its command
    /// line.
    pub fn profile_dir(&self) -> &Path {
        self.profile
            .as_ref()
            .expect("the profile lives until the session closes")
            .path()
    }

    /// Runs a Chrome DevTools Protocol command on the current tab (through chromedriver's
    /// `goog/cdp/execute`) and returns its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .map_err(webdriver(format!("run the CDP command {cmd}")))
    }

    /// Makes `prefers-color-scheme` match `scheme`, at once on the current page and on every
    /// page after it in this tab.
    pub async fn set_color_scheme(&self, scheme: ColorScheme) -> Result<()> {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme.name() }] }),
        )
        .await
        .map(drop)
    }

    /// Lays the page out in `viewport` (`window.innerWidth` and `innerHeight` are its size), at
    /// once and on every page after it in this tab.
    pub async fn set_viewport(&self, viewport: Viewport) -> Result<()> {
        let (width, height) = viewport.size();
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": 1,
                "mobile": viewport == Viewport::Phone,
            }),
        )
        .await
        .map(drop)
    }

    /// Sets a cookie for `url` (e.g. `http://127.0.0.1:PORT`) as if that site had set it,
    /// HttpOnly if asked, `SameSite=Lax`, path `/`. (WebDriver's own add-cookie fails on this
    /// chromedriver; the DevTools protocol works.)
    pub async fn set_cookie(
        &self,
        url: &str,
        name: &str,
        value: &str,
        http_only: bool,
    ) -> Result<()> {
        let reply = self
            .cdp(
                "Network.setCookie",
                json!({
                    "url": url,
                    "name": name,
                    "value": value,
                    "path": "/",
                    "httpOnly": http_only,
                    "sameSite": "Lax",
                }),
            )
            .await?;
        if reply.get("success") == Some(&Value::Bool(false)) {
            return Err(Error::Browser {
                what: format!("the browser refused the cookie {name} for {url}"),
            });
        }
        Ok(())
    }

    /// The cookie named `name` of the current page, HttpOnly ones included, if there is one.
    pub async fn cookie(&self, name: &str) -> Result<Option<Cookie<'static>>> {
        let cookies = self
            .client
            .get_all_cookies()
            .await
            .map_err(webdriver("read the cookies"))?;
        Ok(cookies.into_iter().find(|c| c.name() == name))
    }

    /// Types `value` into the (emptied) element matching `css`.
    pub async fn fill(&self, css: &str, value: &str) -> Result<()> {
        let element = self.find_css(css).await?;
        element
            .clear()
            .await
            .map_err(webdriver(format!("clear {css}")))?;
        element
            .send_keys(value)
            .await
            .map_err(webdriver(format!("type into {css}")))
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) -> Result<()> {
        self.find_css(css)
            .await?
            .click()
            .await
            .map_err(webdriver(format!("click {css}")))
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> Result<String> {
        self.find_css(css)
            .await?
            .text()
            .await
            .map_err(webdriver(format!("read the text of {css}")))
    }

    /// Waits until an element matching `css` shows text containing `text`, and returns it;
    /// fails after `timeout`, saying what those elements showed instead.
    pub async fn wait_for_text(&self, css: &str, text: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            let elements = self
                .client
                .find_all(Locator::Css(css))
                .await
                .map_err(webdriver(format!("find {css}")))?;
            let mut seen = Vec::new();
            for element in elements {
                // An element the page replaced meanwhile (an htmx swap) is stale: look again.
                let Ok(shown) = element.text().await else {
                    continue;
                };
                if shown.contains(text) {
                    return Ok(element);
                }
                seen.push(shown);
            }
            if Instant::now() >= deadline {
                let url = self.client.current_url().await.map(String::from);
                return Err(Error::Browser {
                    what: format!(
                        "no element matching {css} showed {text:?} within {:?} on {}; they showed {seen:?}",
                        timeout,
                        url.as_deref().unwrap_or("an unknown page"),
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// A PNG of the whole current page (beyond the viewport, down to its end), at most
    /// 10000 pixels tall.
    pub async fn full_page_screenshot(&self) -> Result<Vec<u8>> {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await?;
        let dimension = |a: &str, b: &str| metrics[a][b].as_f64().unwrap_or(0.0).ceil();
        let width =
            dimension("cssContentSize", "width").max(dimension("cssLayoutViewport", "clientWidth"));
        let height = dimension("cssContentSize", "height")
            .max(dimension("cssLayoutViewport", "clientHeight"))
            .min(10_000.0);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await?;
        let data = shot["data"].as_str().ok_or_else(|| Error::Browser {
            what: format!("Page.captureScreenshot returned no data: {shot}"),
        })?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| Error::Browser {
                what: format!("Page.captureScreenshot returned bad base64: {e}"),
            })?;
        if png_size(&png).is_none() {
            return Err(Error::Browser {
                what: "Page.captureScreenshot returned something that is not a PNG".into(),
            });
        }
        Ok(png)
    }

    /// Saves full-page screenshots of the current page in the four looks a reviewer checks:
    /// `<page>-light-desktop.png`, `<page>-dark-desktop.png`, `<page>-light-phone.png` and
    /// `<page>-dark-phone.png` in `dir`, and returns their paths. Leaves the session light and
    /// desktop. `page` is a plain name (letters, digits, `-`, `_`).
    pub async fn screenshots(&self, dir: &Path, page: &str) -> Result<Vec<PathBuf>> {
        if page.is_empty()
            || !page
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Browser {
                what: format!(
                    "{page:?} is not a plain page name: use letters, digits, '-' and '_'"
                ),
            });
        }
        let mut saved = Vec::with_capacity(4);
        let shot = async {
            for viewport in [Viewport::Desktop, Viewport::Phone] {
                self.set_viewport(viewport).await?;
                for scheme in [ColorScheme::Light, ColorScheme::Dark] {
                    self.set_color_scheme(scheme).await?;
                    let png = self.full_page_screenshot().await?;
                    let path =
                        dir.join(format!("{page}-{}-{}.png", scheme.name(), viewport.name()));
                    tokio::fs::write(&path, &png)
                        .await
                        .map_err(|source| Error::Io {
                            what: format!("cannot write {}", path.display()),
                            source,
                        })?;
                    saved.push(path);
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        let light = self.set_color_scheme(ColorScheme::Light).await;
        let desktop = self.set_viewport(Viewport::Desktop).await;
        shot.and(light).and(desktop)?;
        Ok(saved)
    }

    async fn find_css(&self, css: &str) -> Result<Element> {
        self.client
            .find(Locator::Css(css))
            .await
            .map_err(webdriver(format!("find {css}")))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Unclosed: a test failed on the way. The browser would outlive it otherwise.
        if let Some(profile) = self.profile.take() {
            end_profile(profile);
        }
    }
}

/// Width and height of a PNG image, or `None` if `bytes` is not one.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((width, height))
}

/// The folder a test saves its output in for review, emptied and created:
/// `$SLIPWAY_TEST_OUTPUT/<test_name>` if set, else `<workspace>/target/test-output/<test_name>`.
/// `test_name` is a plain name, unique to the test.
pub async fn test_output_dir(test_name: &str) -> PathBuf {
    assert!(
        !test_name.is_empty()
            && test_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{test_name:?} is not a plain test name: use letters, digits, '-' and '_'"
    );
    let root = match std::env::var_os(OUTPUT_VAR) {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("test-support lives in <workspace>/crates/test-support")
            .join("target/test-output"),
    };
    let dir = root.join(test_name);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot empty {}: {e}", dir.display()),
    }
    tokio::fs::create_dir_all(&dir)
        .await
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A chromedriver extension command: one DevTools Protocol command on the session's tab.
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

fn webdriver(what: impl Into<String>) -> impl FnOnce(CmdError) -> Error {
    let what = what.into();
    move |source| Error::WebDriver {
        what: format!("cannot {what}"),
        source: Box::new(source),
    }
}

fn profile_arg(profile: &Path) -> String {
    format!("--user-data-dir={}", profile.display())
}

/// Kills what is left of the browser on `profile` and removes the directory. Blocking.
fn end_profile(profile: tempfile::TempDir) {
    kill_profile(&profile_arg(profile.path()));
    let path = profile.keep();
    // Nothing should write there any more; should a dying thread still have, look again.
    for _ in 0..50 {
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// Kills every process with `profile_arg` on its command line (every process of one browser:
/// the browser, its zygotes, renderers, GPU and utility processes) and waits, briefly, until
/// they are gone. Looks again after each round, for a zygote may have forked meanwhile.
/// Blocking.
fn kill_profile(profile_arg: &str) {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        let mut pids = processes_with_arg(profile_arg);
        if pids.is_empty() || Instant::now() >= until {
            return;
        }
        for &pid in &pids {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        while !pids.is_empty() && Instant::now() < until {
            pids.retain(|pid| running(*pid));
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Live processes with `arg` as one of their command-line arguments. Blocking.
pub fn processes_with_arg(arg: &str) -> Vec<i32> {
    live_processes(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|line| line.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
    })
}

/// Live processes in process group `pgid`. Blocking.
pub fn processes_in_group(pgid: u32) -> Vec<i32> {
    live_processes(|pid| {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // After the parenthesised command name: state, parent, process group.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<u32>().ok())
            == Some(pgid)
    })
}

fn live_processes(matches: impl Fn(i32) -> bool) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| matches(*pid) && running(*pid))
        .collect()
}

/// Whether `pid` is a process with a thread that has not exited. (A killed process's main
/// thread can be a zombie while its other threads still run.) Blocking.
fn running(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // The state follows the command name, which is in parentheses and may hold spaces.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}
