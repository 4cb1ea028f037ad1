//! `replay`: rebuilds the projection from the start of the topic into a fresh
//! data dir and returns its digest — how an auditor proves the projection is
//! exactly derivable from the log.

use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use common::progress::IngestProgress;
use common::{Micros, Store};

use crate::worker::{ReplayProgress, Worker};
use crate::{IngestConfig, IngestError};

pub struct ReplayReport {
    pub digest: String,
    pub records: u64,
    pub applied: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// With `until`: the events consumed but not folded (they occurred at
    /// or after it).
    pub after_until: u64,
}

/// Replays `cfg.topic` from the beginning into `data_dir`, which must not
/// hold a store yet, up to the high watermarks seen at the start. On any
/// failure (the topic unreachable, an interruption) the partial store is
/// removed: a directory holding a store is a whole replay. With `until`,
/// the store is the projection as of that time: only events that occurred
/// before it are folded (and it is stamped so).
pub fn replay(
    cfg: IngestConfig,
    data_dir: &Path,
    cache_bytes: u64,
    until: Option<Micros>,
    show_progress: bool,
    cancel: &CancellationToken,
) -> Result<ReplayReport, IngestError> {
    if data_dir.exists()
        && data_dir
            .read_dir()
            .map_err(|source| IngestError::OutUnreadable {
                path: data_dir.to_owned(),
                source,
            })?
            .next()
            .is_some()
    {
        return Err(IngestError::OutNotEmpty(data_dir.to_owned()));
    }
    let store = Arc::new(Store::open(data_dir, cache_bytes).map_err(|source| {
        IngestError::OutUnusable {
            path: data_dir.to_owned(),
            source,
        }
    })?);
    let built = match until.map(|t| store.set_until(t)) {
        Some(Err(e)) => Err(e.into()),
        _ => rebuild(cfg, &store, show_progress, cancel),
    };
    if built.is_err() {
        drop(store);
        remove_partial(data_dir);
    }
    built
}

fn remove_partial(data_dir: &Path) {
    // The directory was absent or empty at the start: all of it is ours.
    if let Ok(entries) = data_dir.read_dir() {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

fn rebuild(
    cfg: IngestConfig,
    store: &Arc<Store>,
    show_progress: bool,
    cancel: &CancellationToken,
) -> Result<ReplayReport, IngestError> {
    let progress = Arc::new(IngestProgress::new(&cfg.topic));
    let bar = if show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    // The rate rounded to a whole message (indicatif's `{per_sec}` printed
    // `5,041.1324/s`).
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replay [{elapsed_precise}] {wide_bar} {pos}/{len} msgs ({rate}, eta {eta})",
        )
        .expect("static template")
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", s.per_sec());
            },
        ),
    );
    let worker = Worker::new(cfg, store.clone(), progress)?;
    let mut consumed = 0;
    worker.run_to_end(cancel, &mut |p| match p {
        ReplayProgress::Started { messages } => bar.set_length(messages),
        ReplayProgress::Batch { messages } => {
            consumed += messages;
            bar.inc(messages)
        }
    })?;
    bar.finish_and_clear();
    let t = store.totals();
    Ok(ReplayReport {
        digest: store.view().digest()?,
        records: t.records,
        applied: t.applied,
        duplicates: t.duplicates,
        quarantined: t.quarantined,
        after_until: consumed.saturating_sub(t.applied + t.duplicates + t.quarantined),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay never writes over a store: a directory with anything in it
    /// is refused before any broker is asked.
    #[test]
    fn replay_refuses_a_directory_that_is_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep-me"), b"data").unwrap();
        let cfg = IngestConfig::new("127.0.0.1:1", "t");
        let err = replay(
            cfg,
            dir.path(),
            1 << 20,
            None,
            false,
            &CancellationToken::new(),
        )
        .err()
        .expect("refused");
        assert!(
            matches!(err, IngestError::OutNotEmpty(ref p) if p == dir.path()),
            "{err}"
        );
        assert!(err.to_string().contains("replay needs a fresh data dir"));
        assert_eq!(std::fs::read(dir.path().join("keep-me")).unwrap(), b"data");
    }
}
