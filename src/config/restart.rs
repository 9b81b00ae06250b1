//! Settings that only a restart can change: a reload keeps their running values.

use super::Config;

/// Keeps the running value of every setting that needs a restart; returns the names of those
/// the new configuration tried to change.
pub fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $name:literal) => {
            if new.$($field).+ != running.$($field).+ {
                changed.push($name);
                new.$($field).+ = running.$($field).+.clone();
            }
        };
    }
    keep!(server.host, "server.host");
    keep!(server.port, "server.port");
    keep!(models.dir, "models.dir");
    keep!(models.whisper, "models.whisper");
    keep!(engine.device, "engine.device");
    keep!(engine.onnxruntime_library, "engine.onnxruntime_library");
    keep!(asr.workers, "asr.workers");
    keep!(asr.threads, "asr.threads");
    keep!(asr.final_queue, "asr.final_queue");
    keep!(asr.partial_queue, "asr.partial_queue");
    keep!(asr.partial_workers, "asr.partial_workers");
    keep!(diarization.enabled, "diarization.enabled");
    keep!(diarization.queue, "diarization.queue");
    keep!(limits.max_upload_bytes, "limits.max_upload_bytes");
    keep!(store.enabled, "store.enabled");
    keep!(store.data_dir, "store.data_dir");
    keep!(store.url, "store.url");
    keep!(store.replica_id, "store.replica_id");
    keep!(store.heartbeat_s, "store.heartbeat_s");
    keep!(store.heartbeat_timeout_s, "store.heartbeat_timeout_s");
    keep!(store.connect_timeout_s, "store.connect_timeout_s");
    keep!(store.buffer_sessions, "store.buffer_sessions");
    keep!(telemetry.sentry_dsn, "telemetry.sentry_dsn");
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_only_settings_keep_their_running_values() {
        let running = Config::default();
        let mut new = Config::default();
        new.server.port = 9999;
        new.models.whisper = "base".into();
        new.limits.max_sessions = 2;
        new.vad.threshold = 0.6;
        let changed = keep_restart_only(&running, &mut new);
        assert_eq!(changed, ["server.port", "models.whisper"]);
        assert_eq!((new.server.port, new.models.whisper.as_str()), (8000, "tiny.en"));
        assert_eq!((new.limits.max_sessions, new.vad.threshold), (2, 0.6), "live settings change");
    }
}
