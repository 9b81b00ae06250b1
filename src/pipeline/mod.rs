//! The sans-IO stages of the streaming pipeline. Each is a plain struct fed with `push` and
//! drained with `finish`; none owns a thread, a channel or a clock, so the server, the offline
//! CLI and the benchmarks run exactly the same code.

pub mod commit;
pub mod continuation;
pub mod policy;
pub mod segmenter;
pub mod vad;

/// Samples per Silero frame at 16 kHz: 32 ms.
pub const FRAME_SAMPLES: usize = 512;
