//! Where crowdout's own CPU loops run in parallel: on libtorch's OpenMP thread team.
//!
//! A DP step interleaves libtorch kernels with a few loops of ours (the privacy noise, the CNN
//! max-pool). libtorch's CPU kernels run on a GNU OpenMP team whose worker threads keep spinning
//! for a while after each kernel. A second pool (rayon) running our loop between two kernels then
//! shares the cores with those spinning workers: on 2 cores the MLP step's noise took 1.2 ms inside
//! the step against 0.6 ms alone, and the kernels after it slowed down too. [`for_each_index`]
//! therefore runs the loop on the same OpenMP team, through libgomp's `GOMP_parallel` entry point
//! (the one `#pragma omp parallel` compiles to; GCC ABI `GOMP_4.0`), looked up at run time in the
//! libgomp that libtorch already loaded, by symbol *and version* (`dlvsym`: `GOMP_parallel@GOMP_4.0`,
//! `omp_in_parallel@OMP_1.0`), so the signature we call it with is the one that version defines.
//! Only on linux-gnu, where that ABI and `dlvsym` are known; elsewhere (macOS, musl, Windows), or
//! where there is no such libgomp (a libtorch built without OpenMP, or with LLVM's), the loop runs
//! on rayon's global pool instead. Either way the result must not depend on the thread
//! count, so callers key their work by index, never by thread.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;

type GompParallel = unsafe extern "C" fn(extern "C" fn(*mut c_void), *mut c_void, c_uint, c_uint);
type OmpInt = unsafe extern "C" fn() -> c_int;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn dlvsym(handle: *mut c_void, symbol: *const c_char, version: *const c_char) -> *mut c_void;
}

/// The libgomp entry points, when the process has them.
struct Gomp {
    parallel: GompParallel,
    in_parallel: OmpInt,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn gomp() -> Option<&'static Gomp> {
    static G: OnceLock<Option<Gomp>> = OnceLock::new();
    G.get_or_init(|| {
        // Make sure libtorch (and with it its OpenMP runtime) is loaded before looking.
        let _ = tch::get_num_threads();
        let find = |name: &CStr, version: &CStr| {
            // SAFETY: RTLD_DEFAULT (a null handle on glibc) searches the loaded objects; `name` and
            // `version` are NUL-terminated.
            let p = unsafe { dlvsym(std::ptr::null_mut(), name.as_ptr(), version.as_ptr()) };
            (!p.is_null()).then_some(p)
        };
        let parallel = find(c"GOMP_parallel", c"GOMP_4.0")?;
        let in_parallel = find(c"omp_in_parallel", c"OMP_1.0")?;
        // SAFETY: both are libgomp's symbols of exactly these versions, whose C signatures are
        // the ones above (GCC libgomp's GOMP_4.0 ABI; the OpenMP 1.0 API).
        unsafe {
            Some(Gomp {
                parallel: std::mem::transmute::<*mut c_void, GompParallel>(parallel),
                in_parallel: std::mem::transmute::<*mut c_void, OmpInt>(in_parallel),
            })
        }
    })
    .as_ref()
}

/// Not linux-gnu: the signature of whatever OpenMP runtime is loaded is not known here.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn gomp() -> Option<&'static Gomp> {
    None
}

/// Whether [`for_each_index`] runs on libtorch's OpenMP team (true) or on rayon (false).
pub fn uses_openmp() -> bool {
    gomp().is_some()
}

/// What every thread of the team reads: the body, the next index to claim, and whether a body
/// panicked (so the others stop claiming).
struct Job<'a> {
    body: &'a (dyn Fn(usize) + Sync),
    n: usize,
    next: AtomicUsize,
    panicked: AtomicBool,
    payload: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

extern "C" fn run_job(data: *mut c_void) {
    // SAFETY: `data` is the `&Job` passed to GOMP_parallel by `for_each_index`, which outlives the
    // parallel region (GOMP_parallel returns only after every thread has left this function).
    let job = unsafe { &*(data as *const Job) };
    loop {
        if job.panicked.load(Ordering::Relaxed) {
            return;
        }
        let i = job.next.fetch_add(1, Ordering::Relaxed);
        if i >= job.n {
            return;
        }
        // A panic must not unwind through C frames: catch it, stop the team, re-raise afterwards.
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| (job.body)(i))) {
            job.panicked.store(true, Ordering::Relaxed);
            job.payload.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(p);
        }
    }
}

/// Run `body(i)` for every `i` in `0..n`, each exactly once, in parallel on libtorch's CPU threads
/// (`tch::get_num_threads()` of them), claiming indices dynamically. Inside an OpenMP region already,
/// or without libgomp, it falls back to rayon. A panic in `body` is re-raised here.
pub fn for_each_index(n: usize, body: impl Fn(usize) + Sync) {
    if n == 0 {
        return;
    }
    let threads = tch::get_num_threads().max(1) as usize;
    let g = match gomp() {
        // SAFETY: a plain query of the OpenMP runtime.
        Some(g) if n > 1 && threads > 1 && unsafe { (g.in_parallel)() } == 0 => g,
        _ => {
            use rayon::prelude::*;
            if n == 1 || threads == 1 {
                (0..n).for_each(body);
            } else {
                (0..n).into_par_iter().for_each(&body);
            }
            return;
        }
    };
    let job = Job {
        body: &body,
        n,
        next: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        payload: Default::default(),
    };
    let team = threads.min(n) as c_uint;
    // SAFETY: `run_job` only reads `job` through a shared reference, and `job` lives until
    // GOMP_parallel has joined the team.
    unsafe { (g.parallel)(run_job, &job as *const Job as *mut c_void, team, 0) };
    if let Some(p) = job.payload.into_inner().unwrap_or_else(|e| e.into_inner()) {
        std::panic::resume_unwind(p);
    }
}

/// Split `out` into chunks of `chunk` elements and run `body(j, chunk_j)` on each in parallel
/// ([`for_each_index`]).
pub fn for_each_chunk_mut<T: Send>(out: &mut [T], chunk: usize, body: impl Fn(usize, &mut [T]) + Sync) {
    assert!(chunk > 0, "chunk size must be > 0");
    let len = out.len();
    let n = len.div_ceil(chunk);
    let base = SendPtr(out.as_mut_ptr());
    for_each_index(n, |j| {
        let start = j * chunk;
        let end = (start + chunk).min(len);
        // SAFETY: index j is claimed exactly once, so the ranges [start, end) handed out are
        // disjoint sub-slices of `out`, which stays mutably borrowed for this whole call.
        let part = unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
        body(j, part);
    });
}

struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: used only to hand out disjoint sub-slices (see `for_each_chunk_mut`).
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(&self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_once() {
        let hits: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        for_each_index(hits.len(), |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn chunks_cover_the_slice() {
        let mut v = vec![0usize; 10_007];
        for_each_chunk_mut(&mut v, 64, |j, c| {
            for (k, x) in c.iter_mut().enumerate() {
                *x = j * 64 + k;
            }
        });
        assert!(v.iter().enumerate().all(|(i, x)| i == *x));
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn libtorch_openmp_is_found() {
        // The PyTorch wheel's libtorch uses GNU OpenMP; if this fails, the noise falls back to rayon.
        assert!(uses_openmp());
    }

    #[test]
    fn panic_is_re_raised() {
        let r = catch_unwind(|| for_each_index(100, |i| assert!(i != 57, "index 57")));
        assert!(r.is_err());
        // The team still works afterwards.
        let count = AtomicUsize::new(0);
        for_each_index(100, |_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 100);
    }
}
