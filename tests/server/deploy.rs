//! The deployment files: Prometheus's configuration, the Kubernetes manifests and compose.yaml
//! checked offline with real tools, and every query of the Grafana dashboard run against a
//! real Prometheus scraping a real server that has served a stream.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(command: &mut Command) -> (bool, String) {
    let out = command.output().expect("the program runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn prometheus_configuration_passes_promtool() {
    let (ok, out) =
        run(Command::new("promtool").args(["check", "config"]).arg(repo("deploy/prometheus/prometheus.yml")));
    assert!(ok, "{out}");
}

#[test]
fn kubernetes_manifests_validate_against_the_schemas() {
    let manifests: Vec<PathBuf> = std::fs::read_dir(repo("deploy/k8s")).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(manifests.len() >= 6, "{manifests:?}");
    let validate = venv("kubernetes-validate");
    let (ok, out) = run(Command::new(&validate).arg("--strict").args(&manifests));
    assert!(ok, "{out}");
    for kind in ["deployment", "service", "horizontalpodautoscaler", "poddisruptionbudget", "configmap", "secret"] {
        assert!(out.contains(&format!("resource {kind}/")), "{kind} missing: {out}");
    }
    // The validator does reject a broken manifest (so the pass above means something).
    let broken = scratch("broken.yaml");
    let deployment = std::fs::read_to_string(repo("deploy/k8s/deployment.yaml")).unwrap();
    std::fs::write(&broken, deployment.replace("containerPort: 8000", "containerPort: \"eight thousand\"")).unwrap();
    assert!(!run(Command::new(&validate).arg("--strict").arg(&broken)).0);
}

#[test]
fn compose_names_only_what_exists_and_the_configmap_is_a_valid_configuration() {
    let toml = scratch("configmap.toml");
    let (ok, out) = run(Command::new(venv("python")).arg(repo("tests/clients/check_deploy.py")).arg(&toml));
    assert!(ok, "{out}");
    let (ok, out) = run(Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["config", "check", "--config"])
        .arg(&toml)
        .env_remove("SPEECH_CONFIG"));
    assert!(ok, "{out}");
    std::fs::remove_file(toml).unwrap();
}

/// Prometheus from Debian's package, scraping `target` every second; killed when dropped.
struct Prometheus {
    process: std::process::Child,
    port: u16,
    dir: PathBuf,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("speech-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: speech-service\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let process = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus is installed by scripts/test.sh");
        Self { process, port, dir }
    }

    /// Waits until Prometheus says it is ready: it listens before its storage is open, and
    /// answers queries 503 until then (seen under the whole suite's load).
    async fn wait_ready(&self) {
        let app = TestApp { addr: ([127, 0, 0, 1], self.port).into() };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok()
                && http_text(&app, "GET", "/-/ready").await.0 == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Prometheus did not become ready");
    }

    async fn query(&self, expr: &str) -> serde_json::Value {
        let app = TestApp { addr: ([127, 0, 0, 1], self.port).into() };
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let (status, body) = http_text(&app, "GET", &path).await;
        assert_eq!(status, 200, "{expr}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dashboard_queries(path: &Path) -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|_| {});
    let prometheus = Prometheus::start(&app.addr.to_string());
    prometheus.wait_ready().await;
    // Wait for Prometheus to scrape once before the stream, so rates see it happen.
    wait_for_scrapes(&prometheus, 1).await;
    let mut ws = connect(&app.ws_url()).await;
    next_message(&mut ws).await;
    // One mistake, so the errors panel has a series.
    send_text(&mut ws, "not json").await;
    let pcm = jfk_pcm();
    for frame in pcm.chunks(8000) {
        send_binary(&mut ws, frame.to_vec()).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    send_message(&mut ws, &ClientMessage::Close).await;
    until_closed(&mut ws).await;
    let after = scrape_count(&prometheus).await;
    wait_for_scrapes(&prometheus, after + 3).await;

    let queries = dashboard_queries(&repo("deploy/grafana/dashboards/speech-service.json"));
    assert!(queries.len() >= 9, "{queries:?}");
    for expr in queries {
        let answer = prometheus.query(&expr).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        let result = answer["data"]["result"].as_array().unwrap();
        assert!(!result.is_empty(), "no data for {expr}");
    }
}

async fn scrape_count(prometheus: &Prometheus) -> usize {
    let answer = prometheus.query("count_over_time(up[5m])").await;
    answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn wait_for_scrapes(prometheus: &Prometheus, n: usize) {
    for _ in 0..300 {
        if let Ok(count) = tokio::time::timeout(Duration::from_secs(2), scrape_count(prometheus)).await {
            if count >= n {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Prometheus did not scrape {n} times");
}
