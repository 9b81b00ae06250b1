//! Where inference runs: the CPU, or an NVIDIA GPU through CUDA when the binary was built with
//! it (`--features cuda`, scripts/build-cuda.sh). Decided once at start from `engine.device`;
//! only `auto` ever falls back, and it says so.

use std::ffi::CStr;

use serde::{Deserialize, Serialize};

/// `engine.device`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The GPU when the binary has CUDA and a device is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        }
    }
}

/// A GPU that whisper.cpp's CUDA backend can use.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    /// CUDA's device number (the first is the one used).
    pub index: usize,
    pub name: String,
    pub memory_total: u64,
}

/// The device the engines run on, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub choice: DeviceChoice,
    /// Where Whisper and CAM++ run.
    pub gpu: Option<Gpu>,
    /// Whether speaker segmentation (ONNX Runtime) runs on that GPU too.
    pub segmentation_on_gpu: bool,
    pub reason: String,
}

impl Placement {
    /// `cpu` or `cuda:N`: where Whisper and CAM++ run.
    pub fn name(&self) -> String {
        device_name(self.gpu_index())
    }

    /// The CUDA device number when on a GPU.
    pub fn gpu_index(&self) -> Option<usize> {
        self.gpu.as_ref().map(|g| g.index)
    }

    /// The CUDA device speaker segmentation runs on, if any.
    pub fn segmentation_gpu(&self) -> Option<usize> {
        self.gpu_index().filter(|_| self.segmentation_on_gpu)
    }

    /// Where speaker segmentation runs: `cpu` or `cuda:N`.
    pub fn segmentation_name(&self) -> String {
        device_name(self.segmentation_gpu())
    }

    /// Places segmentation once ONNX Runtime's library is loaded: on the GPU when the library
    /// has the CUDA provider. Without it, `cuda` is an error and `auto` keeps segmentation on the
    /// CPU and says so.
    pub fn with_onnx(mut self, has_cuda_provider: bool) -> Result<Self, DeviceError> {
        if self.gpu.is_none() {
            return Ok(self);
        }
        match (has_cuda_provider, self.choice) {
            (true, _) => self.segmentation_on_gpu = true,
            (false, DeviceChoice::Cuda) => return Err(DeviceError::OnnxWithoutCuda),
            (false, _) => self.reason.push_str(
                "; speaker segmentation on the CPU: this ONNX Runtime library has no CUDA provider \
                 (engine.onnxruntime_library)",
            ),
        }
        Ok(self)
    }
}

fn device_name(gpu: Option<usize>) -> String {
    gpu.map_or_else(|| "cpu".into(), |index| format!("cuda:{index}"))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "engine.device is \"cuda\" but this binary was built without CUDA: build it with scripts/build-cuda.sh, \
         or set engine.device to \"auto\" or \"cpu\""
    )]
    NotBuilt,
    #[error(
        "engine.device is \"cuda\" but CUDA finds no GPU: check the NVIDIA driver (nvidia-smi) and \
         CUDA_VISIBLE_DEVICES, or set engine.device to \"auto\" or \"cpu\""
    )]
    NoGpu,
    #[error(
        "engine.device is \"cuda\" but the ONNX Runtime library has no CUDA provider for speaker segmentation: \
         set engine.onnxruntime_library to a GPU build (onnxruntime-gpu), or set engine.device to \"auto\""
    )]
    OnnxWithoutCuda,
}

/// Whether this binary was built with CUDA.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Decides where the engines run on this machine.
pub fn place(choice: DeviceChoice) -> Result<Placement, DeviceError> {
    decide(choice, CUDA_BUILT, gpus())
}

/// The decision, from what the binary has and the GPUs found.
pub fn decide(choice: DeviceChoice, built: bool, gpus: Vec<Gpu>) -> Result<Placement, DeviceError> {
    let first = gpus.into_iter().next();
    let (gpu, reason) = match (choice, built, first) {
        (DeviceChoice::Cpu, _, _) => (None, "engine.device is \"cpu\"".to_owned()),
        (DeviceChoice::Cuda, false, _) => return Err(DeviceError::NotBuilt),
        (DeviceChoice::Cuda, true, None) => return Err(DeviceError::NoGpu),
        (DeviceChoice::Cuda, true, Some(gpu)) => (Some(gpu), "engine.device is \"cuda\"".to_owned()),
        (DeviceChoice::Auto, false, _) => (None, "auto: this binary was built without CUDA".to_owned()),
        (DeviceChoice::Auto, true, None) => (None, "auto: CUDA finds no GPU, so the CPU".to_owned()),
        (DeviceChoice::Auto, true, Some(gpu)) => (Some(gpu), "auto: a CUDA GPU was found".to_owned()),
    };
    Ok(Placement { choice, gpu, segmentation_on_gpu: false, reason })
}

/// The GPUs in ggml's backend registry: whisper.cpp's CUDA backend registers one per device the
/// driver shows; a CPU build registers none.
pub fn gpus() -> Vec<Gpu> {
    use whisper_rs_sys as ggml;
    let mut found = Vec::new();
    // SAFETY: the registry is built once, in ggml's static initialisation, and only read here;
    // every pointer it returns lives as long as the process.
    unsafe {
        for i in 0..ggml::ggml_backend_dev_count() {
            let dev = ggml::ggml_backend_dev_get(i);
            if dev.is_null()
                || ggml::ggml_backend_dev_type(dev) != ggml::ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_GPU
            {
                continue;
            }
            let text = |p: *const std::os::raw::c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let (mut free, mut total) = (0usize, 0usize);
            ggml::ggml_backend_dev_memory(dev, &mut free, &mut total);
            let name = text(ggml::ggml_backend_dev_description(dev));
            found.push(Gpu { index: found.len(), name, memory_total: total as u64 });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h100() -> Gpu {
        Gpu { index: 0, name: "NVIDIA H100 80GB HBM3".into(), memory_total: 80 << 30 }
    }

    #[test]
    fn cuda_is_used_when_built_and_present() {
        for choice in [DeviceChoice::Auto, DeviceChoice::Cuda] {
            let placed = decide(choice, true, vec![h100()]).unwrap();
            assert_eq!((placed.name(), placed.gpu_index()), ("cuda:0".into(), Some(0)));
        }
    }

    #[test]
    fn asking_for_cuda_where_there_is_none_is_an_error_naming_why() {
        assert_eq!(decide(DeviceChoice::Cuda, false, vec![]), Err(DeviceError::NotBuilt));
        assert_eq!(decide(DeviceChoice::Cuda, true, vec![]), Err(DeviceError::NoGpu));
        assert!(DeviceError::NotBuilt.to_string().contains("built without CUDA"));
    }

    #[test]
    fn only_auto_falls_back_and_it_says_why() {
        let unbuilt = decide(DeviceChoice::Auto, false, vec![h100()]).unwrap();
        assert_eq!(
            (unbuilt.name(), unbuilt.reason.as_str()),
            ("cpu".into(), "auto: this binary was built without CUDA")
        );
        let absent = decide(DeviceChoice::Auto, true, vec![]).unwrap();
        assert!(absent.gpu.is_none() && absent.reason.contains("no GPU"));
        assert!(decide(DeviceChoice::Cpu, true, vec![h100()]).unwrap().gpu.is_none());
    }

    #[test]
    fn segmentation_follows_the_gpu_only_with_a_cuda_provider() {
        let on_gpu = |choice| decide(choice, true, vec![h100()]).unwrap();
        let both = on_gpu(DeviceChoice::Cuda).with_onnx(true).unwrap();
        assert_eq!((both.segmentation_name(), both.segmentation_gpu()), ("cuda:0".into(), Some(0)));
        assert_eq!(on_gpu(DeviceChoice::Cuda).with_onnx(false), Err(DeviceError::OnnxWithoutCuda));
        let auto = on_gpu(DeviceChoice::Auto).with_onnx(false).unwrap();
        assert_eq!((auto.name(), auto.segmentation_name()), ("cuda:0".into(), "cpu".into()));
        assert_eq!(auto.segmentation_gpu(), None);
        assert!(auto.reason.contains("no CUDA provider"), "{}", auto.reason);
        let cpu = decide(DeviceChoice::Auto, false, vec![]).unwrap().with_onnx(true).unwrap();
        assert!(!cpu.segmentation_on_gpu);
    }

    #[test]
    fn a_cpu_build_sees_no_gpu() {
        if !CUDA_BUILT {
            assert!(gpus().is_empty());
            assert_eq!(place(DeviceChoice::Cuda), Err(DeviceError::NotBuilt));
        }
    }
}
