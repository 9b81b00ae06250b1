//! Who spoke: fbank features, CAM++ embeddings, pyannote segmentation and online clustering.

pub mod attribution;
pub mod band;
pub mod campplus;
pub mod cluster;
mod conv;
pub mod fbank;
pub mod review;
pub mod segmentation;
