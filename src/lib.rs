//! speech-service: real-time speech-to-text over WebSocket with Silero VAD and Whisper.
//!
//! See docs/ARCHITECTURE.md for the map of this crate.

pub mod app;
pub mod audio;
pub mod client;
pub mod config;
pub mod domain;
pub mod engine;
pub mod eval;
pub mod http;
pub mod load;
pub mod logging;
pub mod models;
pub mod offline;
pub mod onnx;
pub mod pipeline;
pub mod process;
pub mod protocol;
pub mod registry;
pub mod session;
pub mod speaker;
pub mod store;
pub mod telemetry;
