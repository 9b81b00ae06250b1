//! Scoring: text normalisation and word error rate.

pub mod wer;
