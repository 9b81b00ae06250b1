//! The state every route and session upgrade shares.

use std::sync::Arc;

use tokio::sync::{watch, Semaphore};

use crate::config::Config;
use crate::session::SessionDeps;

/// Shared state behind every route; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The running configuration; a reload replaces it for new sessions and requests.
    pub config: Arc<watch::Sender<Arc<Config>>>,
    /// The engines, counters, registry and shutdown signal that sessions share.
    pub shared: SessionDeps,
    /// One permit per live session: the hard limit (`limits.max_sessions`).
    pub session_slots: Arc<Semaphore>,
    /// Load-aware admission of streams, and the load figures.
    pub admission: Arc<crate::registry::admission::Admission>,
    /// Live streams per API key (`auth.max_sessions_per_key`).
    pub key_sessions: Arc<super::key_limits::KeySessions>,
    pub started: std::time::Instant,
    /// 1 at start, one more for each reload that changed something.
    pub config_version: Arc<std::sync::atomic::AtomicU64>,
    /// Changes the log filter on reload; `None` when fixed on the command line (or in tests).
    pub log: Option<crate::logging::LogHandle>,
}

impl AppState {
    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The load as admission sees it for a stream with the default settings (speakers on
    /// where the server has them): what readiness, `/stats` and `/metrics` report.
    pub fn load_status(&self) -> crate::registry::admission::LoadStatus {
        self.admission.status(&self.config().admission, self.shared.engines.diarize.is_some())
    }
}
