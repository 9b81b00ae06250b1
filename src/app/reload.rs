//! Hot reload: on SIGHUP, or when the config file changes, the file (and environment) is read
//! again. An invalid file is rejected and the running configuration stays. Settings that only a
//! restart can change keep their running values and are reported. The rest take effect for new
//! sessions and requests; the session limit changes at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::load::{load, ConfigError};
use crate::config::restart::keep_restart_only;
use crate::http::AppState;

/// How often the file is checked for a change.
const POLL: Duration = Duration::from_secs(2);

/// How long a changed file must stay the same before it is read: a file written in place is
/// empty for a moment (truncated, then written), and that moment must not be applied.
const SETTLE: Duration = Duration::from_millis(200);

/// The file's bytes; `None` when it cannot be read. Bytes, not the modification time: a
/// timestamp's granularity can hide a truncate and a write that land in the same tick.
fn contents(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Reads the file as it is now, then reloads on SIGHUP or on a change of `file` for as long as
/// the server runs. The baseline is taken here, before the task exists, so that a change made
/// as soon as the server answers is never taken for the baseline.
pub fn spawn_watcher(file: PathBuf, state: AppState) {
    let seen = contents(&file);
    tokio::spawn(watch(file, state, seen));
}

async fn watch(file: PathBuf, state: AppState, mut seen: Option<Vec<u8>>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
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
        let now = contents(&file);
        if !forced && now == seen {
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let settled = contents(&file);
        if !forced && settled != now {
            // Still being written: look again at the next poll.
            continue;
        }
        seen = settled;
        reload(&file, &state).await;
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
