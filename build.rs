//! Links the binaries so that ggml's `ggml_backend_init_by_type` goes through our wrapper,
//! which gives the CPU backends whisper.cpp never sets a thread count for one thread instead of
//! four (`src/engine/ggml_threads.rs`).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg=-Wl,--wrap=ggml_backend_init_by_type");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
