//! The REST API under property-based testing: schemathesis (pinned in scripts/test.sh) reads
//! `/openapi.json` from a real server and sends generated requests, valid and not, to every
//! operation; no 5xx and no response outside its documented schema, status and content type.

use std::process::Command;

use crate::common::*;

#[tokio::test]
async fn schemathesis_finds_no_server_error_or_undocumented_response() {
    let app = spawn_app(|_| {});
    // A session to list and look up, so the operations on ids see real data too.
    let options = speech_service::client::StreamOptions { speed: 0.0, ..Default::default() };
    speech_service::client::stream_file(&app.ws_url(), &recording("jfk.wav"), &options, |_| {}).await.unwrap();
    let work = fresh_data_dir();
    std::fs::create_dir_all(&work).unwrap();
    let url = format!("http://{}/openapi.json", app.addr);
    let schemathesis = venv("schemathesis");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .args(["run", &url, "--checks", "all", "--max-examples", "60", "--seed", "20261127", "--no-color"])
            .current_dir(&work)
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{text}");
    assert!(text.contains("Tested: 11"), "every operation was tested: {text}");
    assert_eq!(http(&app, "GET", "/health").await.0, 200);
}
