//! Engines: threads that own the heavy models. Sessions talk to them through cheap `Clone`
//! handles over bounded queues; the async runtime never runs Whisper.

pub mod asr;
pub mod diarize;
pub mod queue;
pub mod stats;
pub mod whisper;
