//! One thread for ggml's CPU backends unless told otherwise.
//!
//! whisper.cpp computes the last step of DTW word timing (norm, median filter, mean over the
//! alignment heads) on a CPU backend it creates for that graph and never gives a thread count,
//! so it runs with ggml's default of four threads: four fresh threads per final decode, three
//! of them spinning at ggml's barriers around a median filter that only one can run. On two
//! cores shared with the other worker and the speaker thread, that spinning was 17% of a live
//! stream's profile (docs/BENCHMARKS.md, "The spinning DTW threads").
//!
//! The build script links the binaries with `--wrap=ggml_backend_init_by_type`, which sends
//! every call of that function (whisper.cpp's, ours) here. This does what ggml's own does and
//! then sets a CPU backend's threads to one; whisper.cpp's encoder and decoder set their count
//! (`asr.threads`) before each graph they compute, so only the graph that never set one changes.

use std::os::raw::c_char;
use std::sync::atomic::{AtomicU64, Ordering};

use whisper_rs_sys::{
    ggml_backend_cpu_set_n_threads, ggml_backend_dev_by_type, ggml_backend_dev_init, ggml_backend_dev_type,
    ggml_backend_dev_type_GGML_BACKEND_DEVICE_TYPE_CPU as CPU, ggml_backend_t,
};

/// CPU backends made through the wrapper (a test's proof that the link wrap is in place).
static CPU_BACKENDS: AtomicU64 = AtomicU64::new(0);

/// The linker's target for `ggml_backend_init_by_type` (see the module's comment).
///
/// # Safety
/// As ggml's function: `params` is null or a NUL-terminated string for the device's backend.
#[no_mangle]
pub unsafe extern "C" fn __wrap_ggml_backend_init_by_type(
    kind: ggml_backend_dev_type,
    params: *const c_char,
) -> ggml_backend_t {
    let device = ggml_backend_dev_by_type(kind);
    if device.is_null() {
        return std::ptr::null_mut();
    }
    let backend = ggml_backend_dev_init(device, params);
    if kind == CPU && !backend.is_null() {
        ggml_backend_cpu_set_n_threads(backend, 1);
        CPU_BACKENDS.fetch_add(1, Ordering::Relaxed);
    }
    backend
}

/// How many CPU backends the wrapper has made. Called where Whisper loads, it also keeps the
/// wrapper in every binary that links whisper.cpp: the linker resolves whisper.cpp's wrapped
/// calls only against code it has already taken in.
pub fn cpu_backends_made() -> u64 {
    std::hint::black_box(__wrap_ggml_backend_init_by_type as unsafe extern "C" fn(_, _) -> _);
    CPU_BACKENDS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_cpu_backends_are_made_by_the_wrapper() {
        let before = cpu_backends_made();
        // SAFETY: a null `params` asks for the default CPU backend, freed below.
        let backend = unsafe { whisper_rs_sys::ggml_backend_init_by_type(CPU, std::ptr::null()) };
        assert!(!backend.is_null());
        unsafe { whisper_rs_sys::ggml_backend_free(backend) };
        assert!(cpu_backends_made() > before, "the link wrap of ggml_backend_init_by_type is missing");
    }
}
