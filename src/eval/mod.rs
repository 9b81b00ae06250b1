//! Scoring: text normalisation and word error rate.

pub mod conversation;
pub mod der;
pub mod reference;
pub mod rttm;
pub mod wer;
