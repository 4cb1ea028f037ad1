//! `--features alloc-stats`, a diagnostic build for docs/benchmarks.md
//! ("RSS"): how much of the process's memory the program holds, and how much
//! the allocators keep. mimalloc stays the allocator, wrapped to count the
//! bytes of the blocks it has handed out and not had back; every 5 s a line
//! on stderr sets that against glibc's heap (librdkafka allocates with C's
//! malloc) and RSS. (mimalloc's own "committed" figure is left out: on Linux
//! it counts its reserved arenas, 1 GiB at a time, not memory in use.) The count costs two
//! atomic operations on one shared counter per allocation: not for
//! production.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;

pub struct Counting;

/// Bytes in mimalloc blocks the program holds, each counted at its usable
/// size (the size class it was rounded up to), so that RSS less both heaps
/// is what neither accounts for: mimalloc's free space and metadata, code,
/// stacks.
static IN_USE: AtomicIsize = AtomicIsize::new(0);

// mimalloc's C API (linked by the mimalloc crate; declared here rather than
// through libmimalloc-sys's `extended` bindings, which would add a
// dependency for one function) and glibc's.
extern "C" {
    fn mi_usable_size(p: *const c_void) -> usize;
    fn mallinfo2() -> MallInfo2;
}

/// glibc's `struct mallinfo2` (glibc 2.33 and later): every field, for the
/// layout, though only three are read.
#[allow(dead_code)]
#[repr(C)]
struct MallInfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

/// # Safety
/// `p` is a live block from mimalloc.
unsafe fn usable(p: *mut u8) -> isize {
    mi_usable_size(p as *const c_void) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = MiMalloc.alloc(layout);
        if !p.is_null() {
            IN_USE.fetch_add(usable(p), Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = MiMalloc.alloc_zeroed(layout);
        if !p.is_null() {
            IN_USE.fetch_add(usable(p), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(usable(p), Relaxed);
        MiMalloc.dealloc(p, layout)
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = usable(p);
        let q = MiMalloc.realloc(p, layout, new_size);
        if !q.is_null() {
            IN_USE.fetch_add(usable(q) - old, Relaxed);
        }
        q
    }
}

/// Prints one line every `every` on stderr, for the life of the process.
pub fn report_every(every: Duration) {
    let start = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(every);
        let mib = |b: usize| b as f64 / 1048576.0;
        // SAFETY: mallinfo2 only reads glibc's arenas, under their locks.
        let glibc = unsafe { mallinfo2() };
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
            .unwrap_or(0);
        eprintln!(
            "alloc-stats: {:.0} s: mimalloc blocks in use {:.0} MiB; glibc in use {:.0} MiB of {:.0}; RSS {:.0} MiB",
            start.elapsed().as_secs_f64(),
            mib(IN_USE.load(Relaxed).max(0) as usize),
            mib(glibc.uordblks + glibc.hblkhd),
            mib(glibc.arena + glibc.hblkhd),
            rss_kb as f64 / 1024.0,
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes held now against `before`, in MiB (other tests' allocations
    /// are small next to the ones measured here).
    fn held_mib(before: isize) -> f64 {
        (IN_USE.load(Relaxed) - before) as f64 / 1048576.0
    }

    #[test]
    fn counts_blocks_while_held_across_growth_and_free() {
        let before = IN_USE.load(Relaxed);
        let mut v = vec![1u8; 4 << 20];
        assert!((held_mib(before) - 4.0).abs() < 1.0, "{}", held_mib(before));
        v.reserve_exact(12 << 20); // a realloc to 16 MiB
        assert!(
            (held_mib(before) - 16.0).abs() < 1.0,
            "{}",
            held_mib(before)
        );
        drop(v);
        assert!(held_mib(before).abs() < 1.0, "{}", held_mib(before));
    }
}
