//! The store's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    pub enabled: bool,
    /// The data directory: `SPEECH_DATA_DIR`, default `./data`.
    pub data_dir: PathBuf,
    /// Sessions that ended longer ago than this are deleted (0 keeps them for ever).
    pub retention_days: u32,
    /// `postgres://user:password@host:port/db`: keep sessions in PostgreSQL, shared by every
    /// replica that names the same database, instead of SQLite in `data_dir`.
    pub url: Option<String>,
    /// This server's name in the fleet (PostgreSQL only); default: host name and process id.
    pub replica_id: Option<String>,
    /// How often each replica publishes its live sessions (PostgreSQL only).
    pub heartbeat_s: u64,
    /// A replica silent this long is taken for dead: its live sessions become `interrupted`.
    pub heartbeat_timeout_s: u64,
    /// Connecting to PostgreSQL, and taking a pooled connection, give up after this long.
    pub connect_timeout_s: u64,
    /// Ended sessions held in memory while PostgreSQL is unreachable (then the oldest are lost,
    /// with an error in the log).
    pub buffer_sessions: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let data_dir = std::env::var_os("SPEECH_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from);
        Self {
            enabled: true,
            data_dir,
            retention_days: 30,
            url: None,
            replica_id: None,
            heartbeat_s: 2,
            heartbeat_timeout_s: 10,
            connect_timeout_s: 3,
            buffer_sessions: 10_000,
        }
    }
}

impl StoreConfig {
    /// The replica id to publish under.
    pub fn replica(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    }
}
