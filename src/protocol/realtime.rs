//! OpenAI's Realtime transcription protocol (placeholder while it is written).
