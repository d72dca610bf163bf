//! Process-wide settings for a process that hosts the engine, applied
//! before it starts any thread.

/// glibc's mmap threshold, fixed (its default of 128 KiB, but no longer
/// raised at run time). glibc raises the threshold every time a large
/// mmapped block is freed (compiling a plugin frees many), up to 32 MiB;
/// after that, large buffers come from the heap and their freed pages stay
/// resident. Fixed, the engine with 10,000 runs waiting for input measured
/// 194 MB RSS instead of 227 MB (start-up 88 MB instead of 101 MB).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Applies the settings:
/// - library backtraces stay off unless `RUST_LIB_BACKTRACE` is set.
///   SurrealDB builds an internal error on every upsert of an existing
///   record, and under `RUST_BACKTRACE=1` alone each captured a backtrace
///   (a measurable share of a commit). Panics still follow `RUST_BACKTRACE`.
/// - on Linux with glibc, a fixed mmap threshold (see [`MMAP_THRESHOLD`]).
///
/// # Safety
///
/// Call it first thing in `main`, while the process has a single thread:
/// it sets an environment variable and malloc parameters.
#[allow(unsafe_code)]
pub unsafe fn prepare_process() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller guarantees no other thread exists.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; single-threaded.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
