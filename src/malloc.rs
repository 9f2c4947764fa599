//! The process's memory allocator: mimalloc, for Rust and for libtorch alike.
//!
//! libtorch allocates every CPU tensor with `posix_memalign`, and a training step frees and
//! re-allocates tensors of a few MiB many times. Under Poisson sampling the batch size changes every
//! step, so every activation and gradient buffer changes size with it. glibc's allocator then places
//! each step's buffers at new addresses, which start cache-cold and fault in fresh pages: measured on
//! the DP CNN step (`DP_STEP_PROFILE=W2 DP_STEP_POISSON=1`), Poisson-sized batches cost 15–20 % over
//! fixed ones of the same mean size, and the reference Fashion-MNIST DP cell took 8.9–9.1 s under
//! glibc against 7.7–7.9 s with mimalloc (`LD_PRELOAD`, same binary, same run record field for
//! field; non-private cells, whose batches are fixed, 5.9–6.6 s either way).
//!
//! mimalloc (Leijen, Zorn & de Moura 2019, "Mimalloc: free list sharding in action") serves requests
//! from size-class pages that a freed block returns to, so a buffer of a slightly different size
//! lands where the last one was. The `override` feature of the `mimalloc` crate makes its `malloc`,
//! `free`, `posix_memalign`, … the process's symbols: the executable exports them, and libtorch's
//! calls bind to them at load time, so one allocator serves both sides (a block allocated by one
//! and freed by the other would be undefined behaviour with two). [`GLOBAL`] routes Rust's own
//! allocations to it as well. The choice of allocator changes where buffers live, never their
//! contents: results are bit-identical under either.
//!
//! Built without transparent huge pages (the crate's `no_thp`: no `madvise(MADV_HUGEPAGE)`, and THP
//! off for the process). With them, on a kernel whose THP mode is `madvise`, every first touch of a
//! 2 MiB page zeroed (and compacted) it whole: loading Fashion-MNIST took 1.1–1.3 s instead of
//! 0.35–0.39 s (`clear_page_erms` was 28 % of a one-epoch run's profile), for no gain in the steps.
//!
//! [`tune`] still fixes glibc's thresholds: on a target where the override does not apply (not
//! Linux/glibc), or for code that reaches glibc's allocator directly, it keeps the behaviour of
//! earlier versions. With the override in place glibc's allocator serves nothing and the call is
//! harmless. Measured before the switch, on glibc alone: after the MLP workload ran first in the
//! same process the ghost step took 22–23 ms with 1.34 M page faults over the run, against 16–17 ms
//! and 67 k page faults with fixed thresholds (`DP_STEP_RATIO=W1,W2`, 2 threads, same machine
//! state): requests below [`MMAP_THRESHOLD`] come from the heap, and the heap returns memory to the
//! system only when more than [`TRIM_THRESHOLD`] is free at its top.

/// The allocator of every Rust allocation of any binary linking this crate (see the module docs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests of at least this many bytes are served by `mmap` (glibc's largest allowed value).
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap beyond which glibc gives it back to the system.
pub const TRIM_THRESHOLD: i32 = 512 << 20;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;
    extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    /// `<malloc.h>` parameter numbers.
    pub const M_TRIM_THRESHOLD: c_int = -1;
    pub const M_MMAP_THRESHOLD: c_int = -3;
}

/// How long (ms) mimalloc keeps freed memory before giving it back to the system (its
/// `purge_delay`; mimalloc's default is 10). A step frees and re-allocates its buffers within a few
/// ms, so at 10 ms part of every step's memory is returned and faulted in again. Measured on the
/// reference DP cell (same binary, interleaved): 8.2–8.5 s at the default, 7.2–7.6 s at 1,000 ms
/// (as with mimalloc 2.0.9, whose defaults differ), 7.3–8.4 s when never purging (peak RSS +120 MiB).
/// At 1,000 ms memory an idle process no longer uses still goes back within seconds.
pub const MIMALLOC_PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// mimalloc's option number of `purge_delay`: `mi_option_purge_delay` in the `mi_option_t` enum of
/// mimalloc 2.3.2's `include/mimalloc.h` (the `v2` sources of `libmimalloc-sys` 0.1.49, pinned in
/// Cargo.toml; the crate does not export this constant). Checked by a test against its default.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Apply the settings above; call once, early in `main`, before tensors are allocated. Returns
/// whether they were applied (false on other C libraries, or if glibc refused a value).
pub fn tune() -> bool {
    // SAFETY: mi_option_set only stores an option value; mimalloc reads it on its next purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, MIMALLOC_PURGE_DELAY_MS) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; both values are within glibc's ranges.
        unsafe {
            glibc::mallopt(glibc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && glibc::mallopt(glibc::M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::tune());
    }

    /// The hard-coded option number is `purge_delay`: its neighbours in the enum have other
    /// defaults (`eager_commit_delay` 1, `use_numa_nodes` 0), `purge_delay` 10 ms; after `tune` it
    /// holds our value. (A unit-test process is fresh, but another test may have called `tune`.)
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: mi_option_get/set only read and store option values.
        let before = unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(before == 10 || before == super::MIMALLOC_PURGE_DELAY_MS, "option 15 is {before}");
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY - 1) }, 1);
        super::tune();
        assert_eq!(unsafe { mi_option_get(super::MI_OPTION_PURGE_DELAY) }, super::MIMALLOC_PURGE_DELAY_MS);
    }

    extern "C" {
        /// mimalloc's "is this pointer in a heap region of mine?" (its extended API).
        fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
        fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    }

    /// The override is in force: a Rust allocation and a libtorch tensor (allocated by libtorch's
    /// own `posix_memalign` call) both live in mimalloc's heap.
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn rust_and_libtorch_allocate_from_mimalloc() {
        let v = vec![1u8; 1 << 20];
        let t = tch::Tensor::zeros([257, 1031], (tch::Kind::Float, tch::Device::Cpu));
        // SAFETY: the function only compares the address with mimalloc's region bounds.
        unsafe {
            assert!(mi_is_in_heap_region(v.as_ptr().cast()), "a Rust Vec is not in mimalloc's heap");
            assert!(mi_is_in_heap_region(t.data_ptr()), "a libtorch tensor is not in mimalloc's heap");
        }
    }
}
