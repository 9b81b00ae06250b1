//! What every session needs from the server.

use std::sync::Arc;

use tokio::sync::watch;

use super::aggregate::AggregatorStats;
use super::registry::SessionRegistry;
use crate::config::Config;
use crate::engine::asr::AsrHandle;
use crate::engine::diarize::DiarizeHandle;
use crate::pipeline::vad::VadModel;

/// What every session needs from the server.
#[derive(Clone)]
pub struct SessionDeps {
    pub asr: AsrHandle,
    /// None when the server runs without speaker models.
    pub diarize: Option<DiarizeHandle>,
    pub aggregator: Arc<AggregatorStats>,
    pub vad: VadModel,
    pub config: Arc<Config>,
    pub shutdown: watch::Receiver<bool>,
    pub registry: Arc<SessionRegistry>,
}
