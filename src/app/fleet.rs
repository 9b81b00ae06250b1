//! The replica's part in a fleet sharing one PostgreSQL store: every heartbeat it publishes its
//! live sessions (with their finals so far), ends those another replica was asked to end
//! (`DELETE /sessions/{id}` sent there), and marks `interrupted` the live sessions of replicas
//! that stopped beating.

use std::sync::Arc;
use std::time::Duration;

use crate::registry::SessionRegistry;
use crate::store::Fleet;

pub async fn heartbeat(registry: Arc<SessionRegistry>, fleet: Arc<dyn Fleet>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (live, replica) = (registry.live_records(), registry.replica().to_owned());
        let fleet = fleet.clone();
        // The database may be away: this beat is skipped and the next one tries again.
        let beat = tokio::task::spawn_blocking(move || {
            fleet.publish(&replica, &live)?;
            fleet.interrupt_stale()?;
            fleet.take_end_requests(&replica)
        })
        .await;
        match beat {
            Ok(Ok(ends)) => {
                for id in ends {
                    tracing::info!(session_id = %id, "ending a session at another replica's request");
                    let _ = registry.terminate(&id);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %crate::logging::chain(&e), "fleet heartbeat failed"),
            Err(e) => tracing::error!(error = %crate::logging::chain(&e), "fleet heartbeat task failed"),
        }
    }
}
