//! Persistence of sessions and their final segments, behind `TranscriptStore`: SQLite in the
//! data directory (the default, embedded, zero set-up) or PostgreSQL (`store.url`), which
//! several replicas share. With PostgreSQL the store is also the fleet's view of live sessions
//! (`Fleet`): each replica publishes its own, and any replica can list them or end one.

use std::sync::Arc;

mod api;
mod config;
mod postgres;
mod published;
mod record;
mod sqlite;
mod writer;

pub use self::api::{Fleet, TranscriptStore};
pub use self::config::StoreConfig;
pub use self::postgres::PostgresStore;
pub use self::record::{unix_now, ListedSession, RemoteSession, StoreError, StoreState, StoredSession};
pub use self::sqlite::SqliteStore;

/// An open store, and the fleet's view through it when it is shared.
#[derive(Clone)]
pub struct OpenStore {
    pub transcripts: Arc<dyn TranscriptStore>,
    /// Present for PostgreSQL, which replicas share.
    pub fleet: Option<Arc<dyn Fleet>>,
}

/// Opens the store the configuration names: PostgreSQL when `url` is set, else SQLite.
pub fn open(config: &StoreConfig) -> Result<OpenStore, StoreError> {
    Ok(match &config.url {
        Some(url) => {
            let shared = Arc::new(PostgresStore::open(url, config)?);
            OpenStore { transcripts: shared.clone(), fleet: Some(shared) }
        }
        None => OpenStore { transcripts: Arc::new(SqliteStore::open(config)?), fleet: None },
    })
}
