//! Scoring: text normalisation and word error rate.

pub mod reference;
pub mod wer;
