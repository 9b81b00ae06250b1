//! The REST API's OpenAPI document, generated from the handlers' annotations, and a small page
//! that lists it (no third-party assets: the machine that serves may have no internet access).

use axum::response::Html;
use axum::Json;
use utoipa::OpenApi;

use crate::protocol::rest::*;

use super::routes;
use crate::domain::{Segment, Word};
use crate::process::ProcessUsage;
use crate::protocol::CloseReason;
use crate::session::aggregate::AggregatorCounts;

/// Every route answers 401 with an [`ErrorBody`] when API keys are configured and none (or a
/// wrong one) was sent; the health and metrics routes only when configured as private.
struct Unauthorized;

impl utoipa::Modify for Unauthorized {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description("No API key, or a wrong one")
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.get, &mut item.delete, &mut item.post, &mut item.put];
            for operation in operations.into_iter().flatten() {
                operation.responses.responses.insert("401".into(), response.clone().into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&Unauthorized),
    info(
        title = "speech-service",
        description = "REST API of the real-time speech-to-text server. The WebSocket protocol (GET /v1/listen) is in docs/protocol.md."
    ),
    paths(
        routes::health,
        routes::health_detailed,
        routes::health_ready,
        routes::metrics,
        routes::list_sessions,
        routes::get_session,
        routes::get_transcript,
        routes::delete_session,
        routes::stats,
        routes::worker_stats,
        routes::aggregator_stats
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        Health,
        DetailedHealth,
        Ready,
        SessionList,
        SessionSnapshot,
        SessionState,
        routes::StateFilter,
        routes::TranscriptFormat,
        CloseReason,
        Segment,
        Word,
        Terminating,
        Stats,
        WorkerStats,
        AggregatorCounts,
        WorkerSnapshot,
        LoadStatus,
        ProcessUsage
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /docs`: the endpoints of the OpenAPI document as a plain page.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}
