//! The process's allocator: mimalloc, markedly faster than glibc's malloc at
//! sled's node copies, a large share of the apply path. Two diagnostic
//! builds for the memory profiles in docs/benchmarks.md ("RSS"):
//! `--features system-alloc` links glibc's malloc, so that a heap profiler
//! (heaptrack) sees every allocation; `--features alloc-stats` counts what
//! mimalloc hands out and reports it against RSS. mimalloc's own settings
//! stay at their defaults; `MIMALLOC_*` variables reach it unchanged.

#[cfg(feature = "alloc-stats")]
pub mod stats;

#[cfg(all(feature = "system-alloc", feature = "alloc-stats"))]
compile_error!("`system-alloc` and `alloc-stats` each choose the allocator: pick one");

#[cfg(not(any(feature = "system-alloc", feature = "alloc-stats")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "alloc-stats", not(feature = "system-alloc")))]
#[global_allocator]
static GLOBAL: stats::Counting = stats::Counting;
