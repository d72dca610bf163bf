//! Gives the memory the compiler freed back to the kernel.
//!
//! Cranelift allocates a few hundred MB on its worker threads to compile a
//! large component (a connector with TLS and Arrow is several MB of Wasm).
//! glibc keeps what those threads freed in their arenas, so without this
//! the process would stay at the compile's peak RSS for its whole life.

/// Returns the free pages of every malloc arena to the kernel (glibc's
/// `malloc_trim(0)`); a no-op elsewhere.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and only gives free pages
    // back; it is safe to call from any thread at any time.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}
