//! glibc `malloc` settings for libtorch's allocation pattern.
//!
//! libtorch allocates every CPU tensor with `posix_memalign`, and a training step frees and
//! re-allocates tensors of a few MiB many times. glibc's default is to serve large requests with
//! `mmap` and to adapt that threshold (and the heap-trimming threshold) dynamically as blocks are
//! freed. Whether a given step's buffers end up in fresh `mmap` pages (zeroed by the kernel on first
//! touch: a page fault per 4 KiB) or in reused heap memory then depends on the history of the
//! process. Measured on the DP CNN step: after the MLP workload ran first in the same process the
//! ghost step took 22–23 ms with 1.34 M page faults over the run, against 16–17 ms and 67 k page
//! faults with fixed thresholds (`DP_STEP_RATIO=W1,W2`, 2 threads, same machine state).
//!
//! [`tune`] fixes both thresholds (which also turns the dynamic adjustment off): requests below
//! [`MMAP_THRESHOLD`] come from the heap, and the heap returns memory to the system only when more
//! than [`TRIM_THRESHOLD`] is free at its top. The peak resident memory does not grow (freed memory
//! is reused, not kept in addition); a process may hold on to up to `TRIM_THRESHOLD` it no longer
//! uses. Other C libraries: nothing is done.

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

/// Apply the settings above; call once, early in `main`, before tensors are allocated. Returns
/// whether they were applied (false on other C libraries, or if glibc refused a value).
pub fn tune() -> bool {
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
}
