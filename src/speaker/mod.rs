//! Who spoke: fbank features, CAM++ embeddings, pyannote segmentation and online clustering.

pub mod campplus;
pub mod fbank;
