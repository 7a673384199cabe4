//! Per-process-type settings with the real `slipwayd up` and `slip`, on SQLite and on
//! PostgreSQL: `healthchecks`, `limits` and `autoscale` set, listed and removed before the
//! first push (each change is rolled out by the platform's release manager before `slip`
//! answers), and the rules between them refused with one line that says what to do.

use serde_json::json;
use slipway_e2e::{PASSWORD, User, both_backends};

both_backends! {
    fn settings_are_set_listed_and_removed(platform: Platform) {
        let ada = User::new();
        ada.slip(&["register", &platform.api_url, "--username", "ada", "--password", PASSWORD]).success();
        ada.slip(&["create", "demo", "--no-remote"]).success();
        let slip = |args: &[&str]| ada.slip(&[&["-a", "demo"], args].concat());

        assert!(slip(&["limits"]).success().starts_with("demo has no limits"));
        let set = slip(&["limits:set", "web", "--memory", "512M", "--cpu", "500m"]);
        let set = set.success();
        assert!(set.starts_with("Setting the limits of web on demo... done"), "{set}");
        assert!(set.contains("web   512Mi   500m"), "{set}");

        let refused = slip(&["autoscale:set", "worker", "--min", "2", "--max", "10", "--cpu-percent", "70"]);
        assert_eq!(refused.failure(), "error: autoscale needs a CPU limit on worker: run `slip limits:set worker --cpu 500m` first");
        let scaled = slip(&["autoscale:set", "web", "--min", "2", "--max", "10", "--cpu-percent", "70", "--json"]);
        assert_eq!(scaled.json(), json!({"web": {"min": 2, "max": 10, "cpu_percent": 70}}));
        let refused = slip(&["limits:unset", "web", "--cpu"]);
        assert_eq!(refused.failure(), "error: web is autoscaled on its CPU limit: run `slip autoscale:unset web` first");
        assert!(slip(&["autoscale"]).success().contains("web   2    10   70%"));

        slip(&["healthchecks:set", "web", "readiness", "httpGet", "/health", "--period", "5"]).success();
        slip(&["healthchecks:set", "worker", "liveness", "exec", "--", "test", "-f", "/tmp/alive"]).success();
        let refused = slip(&["healthchecks:set", "worker", "readiness", "httpGet", "/up"]);
        assert_eq!(refused.failure(), "error: worker processes have no $PORT: give the health check a port, such as --port 8080");
        assert_eq!(slip(&["healthchecks", "--json"]).json(), json!({
            "web": {"readiness": {"type": "httpGet", "path": "/health", "period_seconds": 5, "timeout_seconds": 1, "failure_threshold": 3}},
            "worker": {"liveness": {"type": "exec", "command": "test -f /tmp/alive", "period_seconds": 10, "timeout_seconds": 1, "failure_threshold": 3}},
        }));
        slip(&["healthchecks:unset", "worker"]).success();
        let listed = slip(&["healthchecks"]);
        let listed = listed.success();
        assert!(listed.contains("web   readiness  httpGet /health") && !listed.contains("worker"), "{listed}");

        slip(&["autoscale:unset", "web"]).success();
        slip(&["limits:unset", "web", "--cpu"]).success();
        assert_eq!(slip(&["limits", "--json"]).json(), json!({"web": {"memory": "512Mi", "cpu": null}}));
        slip(&["limits:unset", "web"]).success();
        assert_eq!(slip(&["limits", "--json"]).json(), json!({}));
        assert!(slip(&["autoscale"]).success().starts_with("demo has no autoscaling"));
        drop(platform);
    }
}
