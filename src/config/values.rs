//! The values a setting may take: each count and duration's range, and
//! the parsers that refuse the rest by name, for flags, variables and the
//! config file's keys alike.

/// The range of every numeric setting, one definition each, for the flag
/// (and its variable) and the config file's key alike: past them a value
/// is refused by name, never clamped or wrapped (a huge stream cap made
/// tokio's semaphore panic; a huge stuck threshold wrapped around).
pub mod range {
    /// The cache budget in MiB: 0 would be no cache (sled panics), 2^44
    /// would overflow to 0 bytes.
    pub const CACHE_MB: (u64, u64) = (1, 1 << 20);
    /// A batch open longer than a minute holds its events from the store,
    /// and readiness from catching up, for nothing a larger batch would give.
    pub const MAX_BATCH_WAIT_MS: (u64, u64) = (0, 60_000);
    pub const MEMTABLE_MB: (u64, u64) = (1, 65_536);
    pub const CHANGE_RETENTION: (u64, u64) = (1, 100_000_000);
    pub const MAX_BATCH: (u64, u64) = (1, 1_000_000);
    pub const CONNECT_TIMEOUT_SECS: (u64, u64) = (1, 86_400);
    pub const STARTUP_GRACE_SECS: (u64, u64) = (0, 86_400);
    pub const REQUEST_TIMEOUT_MS: (u64, u64) = (1, 3_600_000);
    pub const MAX_CONCURRENT_REQUESTS: (u64, u64) = (1, 1_000_000);
    pub const MAX_STREAMS: (u64, u64) = (1, 1_000_000);
    pub const SEND_TIMEOUT_SECS: (u64, u64) = (1, 86_400);
    /// Linux's nice values a thread may lower itself to (0: not lowered).
    pub const BACKGROUND_NICE: (u64, u64) = (0, 19);
}

/// A whole number from `MIN` to `MAX`.
pub(crate) fn within<T: TryFrom<u64>, const MIN: u64, const MAX: u64>(
    v: &str,
) -> Result<T, String> {
    let n: u64 = v
        .parse()
        .map_err(|_| format!("`{v}` is not a whole number"))?;
    if !(MIN..=MAX).contains(&n) {
        return Err(format!("must be from {MIN} to {MAX}"));
    }
    T::try_from(n).map_err(|_| format!("must be from {MIN} to {MAX}"))
}

/// The cache budget in MiB (`--cache-mb` of several commands).
pub fn cache_mb(v: &str) -> Result<u64, String> {
    within::<u64, { range::CACHE_MB.0 }, { range::CACHE_MB.1 }>(v)
}

/// A setting that names something (a broker list, a topic): blank is a
/// mistake (an empty variable in a deployment template), never "unset" —
/// a blank broker list once started the in-memory demo in place of a
/// configured tracker.
pub(crate) fn non_blank(v: &str) -> Result<String, String> {
    if v.trim().is_empty() {
        return Err(
            "must not be blank: unset it to use the config file's value or the default".into(),
        );
    }
    Ok(v.to_owned())
}
