//! Builds as good as Heroku's, through `git push` to a real `slipwayd up` with a registry: a
//! code change to an app with many dependencies ships only its code, and a Django app gets
//! its static files collected and served.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;
use slipway_e2e::{Backend, Platform, User};

/// Twenty packages from PyPI, pinned: what a small web app pulls in.
const TWENTY: &str = "\
Flask==3.1.0
Werkzeug==3.1.3
Jinja2==3.1.4
MarkupSafe==3.0.2
itsdangerous==2.2.0
click==8.1.7
blinker==1.9.0
requests==2.32.3
urllib3==2.2.3
idna==3.10
certifi==2024.8.30
charset-normalizer==3.4.0
attrs==24.2.0
packaging==24.2
pyparsing==3.2.0
python-dateutil==2.9.0.post0
six==1.17.0
pytz==2024.2
soupsieve==2.6
beautifulsoup4==4.12.3
";

fn registry_prefix(name: &str) -> String {
    let registry = std::env::var("SLIPWAY_TEST_REGISTRY")
        .expect("SLIPWAY_TEST_REGISTRY is not set: run the suite with scripts/test, which starts docker-registry");
    // A prefix of its own keeps this test's repositories apart from other runs'.
    format!("{registry}/{name}{}", std::process::id())
}

/// Writes `files` into the user's app directory `dir` (made a git repository) and commits.
fn commit_files(user: &mut User, dir: &str, files: &[(&str, &str)], message: &str) {
    let path = user.home().join(dir);
    if !path.join(".git").exists() {
        std::fs::create_dir_all(&path).unwrap();
        user.cwd = path.clone();
        user.git(&["init", "-q", "-b", "main"]).success();
    }
    for (name, text) in files {
        std::fs::create_dir_all(path.join(name).parent().unwrap()).unwrap();
        std::fs::write(path.join(name), text).unwrap();
    }
    user.git(&["add", "-A"]).success();
    user.git(&["commit", "-q", "-m", message]).success();
}

fn builds(user: &User, app: &str) -> Vec<Value> {
    let run = user.slip(&["builds", "-a", app, "--json"]);
    serde_json::from_str::<Value>(run.success())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The layers of a registry image, (digest, size), as the registry's manifest lists them.
fn registry_layers(user: &User, image: &str) -> Vec<(String, u64)> {
    let raw = user.run(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ],
    );
    let manifest: Value = serde_json::from_str(raw.success()).unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_owned(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `GET path` through the router: the status line's code, the response head, the body.
fn get(router: &str, host: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(router).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, head, body)
}

/// A chunked body's bytes.
fn unchunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = chunked.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            std::str::from_utf8(&chunked[..line_end]).unwrap().trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
}

/// A one-line change to a Python app with twenty dependencies pushes only the new code
/// layer and the config: the dependencies' layer keeps its digest and is not sent again.
#[tokio::test]
async fn a_code_change_to_an_app_with_twenty_dependencies_pushes_only_its_code() {
    let prefix = registry_prefix("deps");
    let platform = Platform::start_with(Backend::Sqlite, &["--registry", &prefix])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        let app = |greeting: &str| {
            format!(
                "import os, flask, requests, bs4, dateutil\napp = flask.Flask(__name__)\n\n@app.get('/')\ndef index():\n    return '{greeting}'\n\napp.run(host='0.0.0.0', port=int(os.environ['PORT']))\n"
            )
        };
        let first_code = app("hello v1");
        commit_files(
            &mut ada,
            "shop",
            &[
                ("requirements.txt", TWENTY),
                ("app.py", &first_code),
                ("Procfile", "web: python app.py\n"),
            ],
            "first",
        );
        ada.slip(&["create", "shop"]).success();
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(push.ok, "{}", push.stderr);
        let second_code = app("hello v2");
        commit_files(&mut ada, "shop", &[("app.py", &second_code)], "one line");
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(push.ok, "{}", push.stderr);
        assert!(
            push.stderr
                .contains("Dependencies unchanged (requirements.txt); keeping the virtualenv"),
            "{}",
            push.stderr
        );
        let (status, _, body) = get(&platform.router, "shop.localhost", "/");
        assert_eq!((status, body.as_slice()), (200, &b"hello v2"[..]));

        let builds = builds(&ada, "shop");
        let (second, first) = (&builds[0], &builds[1]);
        let before = registry_layers(&ada, first["image"].as_str().unwrap());
        let after = registry_layers(&ada, second["image"].as_str().unwrap());
        assert_eq!(before.len(), 2, "the virtualenv, then the code: {before:?}");
        assert_eq!(before[0], after[0], "the dependency layer is the same");
        assert!(
            before[0].1 > 1 << 20,
            "twenty packages make a layer of megabytes: {before:?}"
        );
        // What the registry got for the change: blobs the first image did not have.
        let new_bytes: u64 = after
            .iter()
            .filter(|l| !before.contains(l))
            .map(|(_, size)| size)
            .sum();
        let pushed = second["pushed_bytes"].as_u64().unwrap();
        assert!(new_bytes < 100 << 10, "{new_bytes} B of new layers");
        assert!(pushed < 100 << 10, "{pushed} B pushed");
        assert!(pushed >= new_bytes, "the push sent the new layer: {pushed} < {new_bytes}");
    })
    .await
    .unwrap();
}

const DJANGO_SETTINGS: &str = r#"from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "not-a-secret-for-a-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.staticfiles", "site1"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]
ROOT_URLCONF = "site1.urls"
WSGI_APPLICATION = "site1.wsgi.application"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {"staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
"#;

const MANAGE_PY: &str = r#"import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site1.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"#;

/// A Django app serving its static files with WhiteNoise: the build runs collectstatic, and
/// `/static/...` answers 200 with the right type. It asks for a Python this platform does not
/// have: one line says so, and the build goes on with the one there is.
#[tokio::test]
async fn a_django_app_with_whitenoise_serves_its_static_files() {
    let prefix = registry_prefix("django");
    let platform = Platform::start_with(Backend::Sqlite, &["--registry", &prefix])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        let mut ada = User::registered(&platform, "ada");
        commit_files(
            &mut ada,
            "blog",
            &[
                ("requirements.txt", "Django==5.2.8\nwhitenoise==6.9.0\ngunicorn==23.0.0\n"),
                (".python-version", "3.13\n"),
                ("manage.py", MANAGE_PY),
                ("site1/__init__.py", ""),
                ("site1/settings.py", DJANGO_SETTINGS),
                (
                    "site1/urls.py",
                    "from django.http import HttpResponse\nfrom django.urls import path\nurlpatterns = [path('', lambda r: HttpResponse('blog'))]\n",
                ),
                (
                    "site1/wsgi.py",
                    "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site1.settings')\nfrom django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
                ),
                ("site1/static/site.css", "body { color: teal }\n"),
                ("Procfile", "web: gunicorn site1.wsgi --bind 0.0.0.0:$PORT\n"),
            ],
            "django",
        );
        ada.slip(&["create", "blog"]).success();
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(push.ok, "{}", push.stderr);
        let warnings: Vec<&str> = push
            .stderr
            .lines()
            .filter(|l| l.contains("asks for Python"))
            .collect();
        assert_eq!(warnings.len(), 1, "{}", push.stderr);
        assert!(
            warnings[0].trim_end().ends_with(".python-version asks for Python 3.13, which this platform does not have: using Python 3.11.2 (available: 3.11.2)"),
            "{}",
            warnings[0]
        );
        assert!(
            push.stderr
                .contains("Running python manage.py collectstatic --noinput"),
            "{}",
            push.stderr
        );
        let (status, _, body) = get(&platform.router, "blog.localhost", "/");
        assert_eq!((status, body.as_slice()), (200, &b"blog"[..]));
        let (status, head, body) = get(&platform.router, "blog.localhost", "/static/site.css");
        assert_eq!(status, 200, "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/css"),
            "{head}"
        );
        assert_eq!(body, b"body { color: teal }\n");

        // DISABLE_COLLECTSTATIC skips it, as on Heroku.
        ada.slip(&["config:set", "DISABLE_COLLECTSTATIC=1", "-a", "blog"])
            .success();
        commit_files(&mut ada, "blog", &[("README", "again\n")], "again");
        let push = ada.git(&["push", "slipway", "main"]);
        assert!(push.ok, "{}", push.stderr);
        assert!(
            push.stderr
                .contains("Skipping Django's collectstatic (DISABLE_COLLECTSTATIC is set)"),
            "{}",
            push.stderr
        );
    })
    .await
    .unwrap();
}
