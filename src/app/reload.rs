//! Hot reload: on SIGHUP, or when the config file changes, the file (and environment) is read
//! again. An invalid file is rejected and the running configuration stays. Settings that only a
//! restart can change keep their running values and are reported. The rest take effect for new
//! sessions and requests; the session limit changes at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::load::{load, ConfigError};
use crate::config::restart::keep_restart_only;
use crate::http::AppState;

/// How often the file's modification time is checked.
const POLL: Duration = Duration::from_secs(2);

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Reloads on SIGHUP or a change of `file`, for as long as the server runs.
pub async fn watch(file: PathBuf, state: AppState) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = modified(&file);
    loop {
        #[cfg(unix)]
        let signal = async {
            match hangup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signal = std::future::pending::<Option<()>>();
        let forced = tokio::select! {
            _ = signal => true,
            _ = tokio::time::sleep(POLL) => false,
        };
        let now = modified(&file);
        if forced || now != seen {
            seen = now;
            reload(&file, &state).await;
        }
    }
}

/// One reload attempt.
pub async fn reload(file: &Path, state: &AppState) {
    let loaded = load(Some(file)).and_then(|c| c.validate().map(|()| c).map_err(ConfigError::from));
    let mut new = match loaded {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(file = %file.display(), error = %crate::logging::chain(&error), "configuration reload rejected; the running configuration stays");
            return;
        }
    };
    let running = state.config();
    // Flags given at start still win over the file.
    new.models.dir = running.models.dir.clone();
    let needs_restart = keep_restart_only(&running, &mut new);
    if !needs_restart.is_empty() {
        tracing::warn!(settings = ?needs_restart, "these settings need a restart; they keep their running values");
    }
    if new == *running {
        return;
    }
    if new.log.level != running.log.level {
        match &state.log {
            Some(log) => {
                if let Err(error) = log.set_level(&new.log.level) {
                    tracing::error!(error = %crate::logging::chain(&error), "log level not changed");
                }
            }
            None => tracing::warn!("log.level is fixed by --log or SPEECH_LOG; restart without them to change it"),
        }
    }
    resize_slots(state, running.limits.max_sessions, new.limits.max_sessions).await;
    state.config.send_replace(Arc::new(new));
    let version = state.config_version.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    tracing::info!(file = %file.display(), version, "configuration reloaded");
}

/// The session limit is a semaphore: add permits, or take some out of circulation.
async fn resize_slots(state: &AppState, from: usize, to: usize) {
    if to > from {
        state.session_slots.add_permits(to - from);
    } else if to < from {
        let slots = state.session_slots.clone();
        // Waits for sessions to end when the new limit is below the live count.
        tokio::spawn(async move {
            if let Ok(permits) = slots.acquire_many_owned((from - to) as u32).await {
                permits.forget();
            }
        });
    }
}
