//! An app's image runs: built on a run image made from Debian packages
//! (`slipwayd run-image`), unpacked with umoci and started with runc, its web process answers
//! HTTP. This is the image a runtime will run, checked with the standard OCI tools.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slipway_e2e::{Backend, Platform, User};

#[tokio::test]
async fn the_web_process_runs_from_its_image_with_runc() {
    let platform = Platform::start_with(Backend::Sqlite, &["--run-image", "base"])
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || {
        // The run image: busybox-static from Debian, into this platform's image store.
        platform.make_run_image("base");

        let mut ada = User::registered(&platform, "ada");
        let app = ada.home().join("site");
        std::fs::create_dir_all(&app).unwrap();
        ada.cwd = app.clone();
        std::fs::write(app.join("index.html"), "<h1>hello from slipway</h1>\n").unwrap();
        // busybox's httpd, from the run image.
        std::fs::write(
            app.join("Procfile"),
            "web: httpd -f -p $PORT -h /workspace\n",
        )
        .unwrap();
        ada.git(&["init", "-q", "-b", "main"]).success();
        ada.git(&["add", "-A"]).success();
        ada.git(&["commit", "-q", "-m", "site"]).success();
        let commit = ada.git(&["rev-parse", "HEAD"]).success().trim().to_owned();
        ada.slip(&["create", "site"]).success();
        // About builds: the app runs no processes.
        ada.slip(&["ps:scale", "web=0", "-a", "site"]).success();
        ada.git(&["push", "slipway", "main"]).success();

        // Unpack the image as a runtime bundle and run the web process on the host's network.
        let work = tempfile::tempdir().unwrap();
        let bundle = work.path().join("bundle");
        let layout = format!(
            "{}:site:{commit}",
            platform.data_dir.join("images").display()
        );
        let unpacked = Command::new("umoci")
            .args(["unpack", "--image", &layout])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            unpacked.status.success(),
            "umoci: {}",
            String::from_utf8_lossy(&unpacked.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config_path = bundle.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config_path).unwrap()).unwrap();
        // The image names its process types; umoci carries its labels over as annotations.
        let processes = config["annotations"]["io.slipway.processes"]
            .as_str()
            .expect("the image's process types");
        let processes: serde_json::Value = serde_json::from_str(processes).unwrap();
        let web = processes["web"].as_str().expect("a web process").to_owned();
        config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", format!("exec {web}")]);
        config["process"]["terminal"] = serde_json::json!(false);
        config["process"]["env"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(format!("PORT={port}")));
        let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.retain(|ns| ns["type"] != "network");
        std::fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();

        let id = format!("slipway-test-{}", std::process::id());
        let mut runc = Command::new("runc")
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let body = loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                stream
                    .write_all(b"GET / HTTP/1.0\r\nHost: site\r\n\r\n")
                    .unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).unwrap();
                break response;
            }
            if let Some(status) = runc.try_wait().unwrap() {
                let mut err = String::new();
                runc.stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("runc exited with {status}: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "the web process did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = Command::new("runc").args(["kill", &id, "KILL"]).status();
        let _ = runc.wait();
        let _ = Command::new("runc")
            .args(["delete", "--force", &id])
            .status();
        assert!(
            body.starts_with("HTTP/1.1 200") || body.starts_with("HTTP/1.0 200"),
            "{body}"
        );
        assert!(body.contains("hello from slipway"), "{body}");
    })
    .await
    .unwrap();
}
