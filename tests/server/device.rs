//! `engine.device`: where inference runs, said at start and in `/health/detailed`; asking for
//! CUDA where there is none stops the start with the reason, never a quiet fall back.

use speech_service::engine::device::{self, CUDA_BUILT};

use crate::common::*;

#[tokio::test]
async fn auto_says_where_it_runs_and_why() {
    let (status, body) = http(default_app(), "GET", "/health/detailed").await;
    assert_eq!(status, 200, "{body}");
    let device = &body["device"];
    assert_eq!(device["requested"], "auto");
    match (CUDA_BUILT, device::gpus().is_empty()) {
        (false, _) => {
            assert_eq!(
                (device["used"].as_str(), device["reason"].as_str()),
                (Some("cpu"), Some("auto: this binary was built without CUDA"))
            );
            assert_eq!(device["segmentation"], "cpu");
            assert!(device.get("gpu").is_none(), "{device}");
        }
        (true, true) => assert_eq!(device["used"], "cpu", "{device}"),
        (true, false) => {
            assert_eq!(device["used"], "cuda:0", "{device}");
            assert!(device["gpu"].as_str().is_some_and(|name| !name.is_empty()), "{device}");
        }
    }
}

#[tokio::test]
async fn cuda_where_there_is_none_is_a_start_up_error_naming_the_reason() {
    let expected = match (CUDA_BUILT, device::gpus().is_empty()) {
        (false, _) => "this binary was built without CUDA",
        (true, true) => "CUDA finds no GPU",
        // A GPU is there: `cuda` must then run on it (auto_says_where_it_runs_and_why).
        (true, false) => return,
    };
    for how in [&["--device", "cuda"][..], &[]] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
            .args(["--models-dir"])
            .arg(models_dir())
            .args(["serve", "--port", "0"])
            .args(how)
            .env("SPEECH_DEVICE", "cuda")
            .env("SPEECH_DATA_DIR", scratch("device-data"))
            .output();
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), output).await.unwrap().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("engine.device is \"cuda\"") && stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

#[tokio::test]
async fn a_device_name_that_is_not_one_is_refused_naming_the_setting() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["config", "check"])
        .env("SPEECH_ENGINE__DEVICE", "gpu")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("engine.device: unknown variant `gpu`") && stderr.contains("`auto`, `cpu`, `cuda`"),
        "{stderr}"
    );
}
