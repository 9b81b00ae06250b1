//! What every session needs from the server.

use std::sync::Arc;

use tokio::sync::watch;

use super::aggregate::AggregatorStats;
use crate::engine::Engines;
use crate::registry::SessionRegistry;

/// What every session shares with the server (the configuration in force is passed beside
/// it): the routes hold the same value in `AppState`, so nothing is copied field by field.
#[derive(Clone)]
pub struct SessionDeps {
    pub engines: Engines,
    pub aggregator: Arc<AggregatorStats>,
    pub shutdown: watch::Receiver<bool>,
    pub registry: Arc<SessionRegistry>,
}
