//! What a run reads off /proc: a process's RSS and CPU time, this process's
//! I/O and fault counters, the calling thread's scheduler counters, and the
//! machine's CPU around a timed loop.

use std::time::Duration;

pub fn rss_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| proc_value(&status, key) * 1024;
    Ok((kb("VmRSS:"), kb("VmHWM:")))
}

/// The number after `key` in a /proc file of `key value` lines (0 if absent).
pub fn proc_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system, all threads) a process has used so far:
/// `pid` is a number or `"self"`.
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat_cpu(&stat_fields(&stat))
}

/// utime + stime, in seconds, from `stat_fields`.
fn stat_cpu(f: &[u64]) -> f64 {
    let ticks = |i: usize| f.get(i).copied().unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// A /proc/<pid>/stat line's fields after the command name, as numbers
/// (state, the first, reads as 0): minflt is index 7, majflt 9, utime 11,
/// stime 12.
fn stat_fields(stat: &str) -> Vec<u64> {
    stat.rsplit_once(')').map_or(vec![], |(_, r)| {
        r.split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect()
    })
}

/// This process's counters: CPU time of all threads (sled's flusher
/// included), read syscalls (sled reads a node fragment it does not cache
/// with two `pread`s, header then body), bytes those read, bytes fetched
/// from the device, bytes written (sled's log: new node versions), and page
/// faults (minor: the first touch of a mapped page, such as memory the
/// allocator has just mapped; major: a page read from the device). The
/// scheduler's view is of the calling thread: time on a CPU, time runnable
/// but waiting for one, and sleeps (voluntary switches); steal is the
/// machine's, time the host took from this VM's CPUs, in 10 ms ticks.
#[derive(Clone, Copy)]
pub struct Counters {
    pub cpu_secs: f64,
    pub read_calls: u64,
    pub read_chars: u64,
    pub device_reads: u64,
    pub written: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub thread_run_ns: u64,
    pub thread_wait_ns: u64,
    pub thread_sleeps: u64,
    pub steal_ticks: u64,
}

pub fn counters() -> Counters {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f = stat_fields(&stat);
    let field = |i: usize| f.get(i).copied().unwrap_or(0);
    // /proc/thread-self/schedstat: ns on a CPU, ns waiting on the run
    // queue, timeslices. With paravirt steal accounting (this kernel's) the
    // first leaves steal out; interrupts are not accounted apart, so they
    // count as the thread's CPU time.
    let sched = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut sched = sched
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    Counters {
        cpu_secs: stat_cpu(&f),
        read_calls: proc_value(&io, "syscr:"),
        read_chars: proc_value(&io, "rchar:"),
        device_reads: proc_value(&io, "read_bytes:"),
        written: proc_value(&io, "wchar:"),
        minor_faults: field(7),
        major_faults: field(9),
        thread_run_ns: sched.next().unwrap_or(0),
        thread_wait_ns: sched.next().unwrap_or(0),
        thread_sleeps: proc_value(&status, "voluntary_ctxt_switches:"),
        steal_ticks: cpu_ticks().get(7).copied().unwrap_or(0),
    }
}

/// /proc/stat's first line, in ticks of 10 ms: user nice system idle
/// iowait irq softirq steal.
fn cpu_ticks() -> Vec<u64> {
    let cpu = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    cpu.lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect()
}

/// The `n` slowest of `timed` queries, each with the counters it moved: a
/// tail with read calls is sled's cache missing; one with minor faults is
/// fresh memory; time off the CPU is the thread waiting for a core (run
/// queue), sleeping (a lock or I/O: sleeps > 0) or neither (the host's
/// steal); time on it with no reads is the work, or interrupts taken
/// while it ran.
pub fn slowest(timed: &mut [(Duration, Counters, Counters)], n: usize) -> String {
    timed.sort_by_key(|t| std::cmp::Reverse(t.0));
    timed
        .iter()
        .take(n)
        .map(|(d, b, a)| {
            let ms = |ns: u64| ns as f64 / 1e6;
            format!(
                "{:.2} ms ({} read calls, {:.0} KiB read, {:.0} KiB from the device, {} minor faults; on CPU {:.2} ms, run queue {:.2} ms, {} sleeps, {} steal ticks)",
                d.as_secs_f64() * 1000.0,
                a.read_calls - b.read_calls,
                (a.read_chars - b.read_chars) as f64 / 1024.0,
                (a.device_reads - b.device_reads) as f64 / 1024.0,
                a.minor_faults - b.minor_faults,
                ms(a.thread_run_ns - b.thread_run_ns),
                ms(a.thread_wait_ns - b.thread_wait_ns),
                a.thread_sleeps - b.thread_sleeps,
                a.steal_ticks - b.steal_ticks,
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the machine did around a timed loop: this process's counters, and
/// the CPU that other processes used meanwhile: PostgreSQL's background
/// work after a bulk load competes for the 2 cores. (Its parallel query
/// workers live too briefly to be summed by name: "other processes" counts
/// them, from /proc/stat.)
#[derive(Clone, Copy)]
pub struct Machine {
    own: Counters,
    postgres_cpu: f64,
    busy_cpu: f64,
    iowait: f64,
}

pub fn machine() -> Machine {
    let ticks = cpu_ticks();
    let tick = |i: usize| ticks.get(i).copied().unwrap_or(0);
    // Steal counts as busy: a VM's time taken by its host is not ours either.
    let busy = tick(0) + tick(1) + tick(2) + tick(5) + tick(6) + tick(7);
    let mut postgres_cpu = 0.0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        // Processes that exit within the window drop out of this sum.
        if pid.bytes().all(|b| b.is_ascii_digit())
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "postgres\n")
        {
            postgres_cpu += cpu_secs(&pid);
        }
    }
    Machine {
        own: counters(),
        postgres_cpu,
        busy_cpu: busy as f64 / 100.0,
        iowait: tick(4) as f64 / 100.0,
    }
}

impl Machine {
    /// One line on what happened between `before` and now, over `wall` seconds.
    pub fn since(before: Machine, wall: f64) -> String {
        let now = machine();
        let (a, b) = (now.own, before.own);
        let own = a.cpu_secs - b.cpu_secs;
        format!(
            "{wall:.2} s wall; this process: {own:.2} CPU-s, {} read calls, {:.1} MiB read, {:.1} MiB from the device, {} minor and {} major faults; other processes {:.2} CPU-s (postgres's long-lived ones {:.2}); iowait {:.2} s",
            a.read_calls - b.read_calls,
            (a.read_chars - b.read_chars) as f64 / 1048576.0,
            (a.device_reads - b.device_reads) as f64 / 1048576.0,
            a.minor_faults - b.minor_faults,
            a.major_faults - b.major_faults,
            (now.busy_cpu - before.busy_cpu - own).max(0.0),
            now.postgres_cpu - before.postgres_cpu,
            now.iowait - before.iowait,
        )
    }
}
