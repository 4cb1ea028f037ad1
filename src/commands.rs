//! One function per command that is not a serving mode (those are in
//! `serve.rs`): each does its work and says how the process ends.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::config::{FileConfig, KafkaArgs, StoreArgs};
use crate::process::{new_token, one_line, shutdown_token};
use common::store::gaps::GapKind;
use common::Store;

/// Rebuilds the projection from the topic into `out`; prints its digest.
pub fn replay(
    file: &FileConfig,
    out: &Path,
    cache_mb: Option<u64>,
    kafka: &KafkaArgs,
    quiet: bool,
    until: Option<common::Micros>,
) -> anyhow::Result<ExitCode> {
    let brokers = kafka.brokers(file).context("replay needs --brokers")?;
    let cache = StoreArgs {
        data_dir: None,
        cache_mb,
        memtable_mb: None,
        change_retention: None,
        background_nice: None,
    }
    .cache_bytes(file);
    let r = ingest::replay::replay(
        kafka.ingest_config(file, &brokers),
        out,
        cache,
        until,
        !quiet,
        &shutdown_token()?,
    )?;
    println!("digest {}", r.digest);
    println!(
        "records {} applied {} duplicates {} quarantined {}",
        r.records, r.applied, r.duplicates, r.quarantined
    );
    if let Some(t) = until {
        println!(
            "as of {} ({} events at or after it not folded)",
            t.render(),
            r.after_until
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a stopped store's digest and totals.
pub fn digest(file: &FileConfig, store: &StoreArgs) -> anyhow::Result<ExitCode> {
    let dir = store.data_dir(file);
    let s = Store::open_read_only(&dir, store.cache_bytes(file))
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let t = s.totals();
    println!("digest {}", s.view().digest()?);
    println!(
        "records {} applied {} duplicates {} quarantined {}",
        t.records, t.applied, t.duplicates, t.quarantined
    );
    println!("topic {}", s.topic()?.unwrap_or_else(|| "none".into()));
    if let Some(t) = s.until() {
        println!(
            "as of {} (made by replay --until: events from then on are not folded)",
            t.render()
        );
    }
    println!(
        "checkpoints {}",
        common::store::checkpoints_text(&s.checkpoints())
    );
    Ok(ExitCode::SUCCESS)
}

/// Accepts the offset gap a partition is held at, and says what was skipped.
pub fn accept_gap(
    file: &FileConfig,
    store: &StoreArgs,
    kafka: &KafkaArgs,
    partition: i32,
) -> anyhow::Result<ExitCode> {
    let brokers = kafka.brokers(file).context("accept-gap needs --brokers")?;
    let dir = store.data_dir(file);
    let in_store = || format!("the store in {}", dir.display());
    let s = Store::open_existing(&dir, store.cache_bytes(file))
        .with_context(|| format!("opening {}", in_store()))?;
    let a = ingest::accept::accept_gap(&brokers, &kafka.topic(file), &s, partition)
        .with_context(|| format!("accepting the gap in {}", in_store()))?;
    s.flush()
        .with_context(|| format!("making {} durable", in_store()))?;
    let (kind, from) = (a.kind.as_str(), a.from);
    match (a.kind, a.resumed_at) {
        (GapKind::RetentionGap, Some(next)) => println!(
            "partition {partition}: {kind} accepted: offsets {from}..{next} ({} messages) are \
             recorded as skipped; ingest resumes at {next}",
            next - from
        ),
        (_, Some(next)) => println!(
            "partition {partition}: {kind} accepted: offsets below {from} were of the deleted \
             topic; ingest reads the recreated partition from {next}"
        ),
        (_, None) => println!(
            "partition {partition}: {kind} accepted: the partition no longer exists; its \
             checkpoint (offset {from}) is dropped and the gap recorded"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Publishes a JSON-lines file (`-`: standard input), keyed by record id.
pub fn publish(
    file: &FileConfig,
    path: &Path,
    kafka: &KafkaArgs,
    strict: bool,
) -> anyhow::Result<ExitCode> {
    let brokers = kafka.brokers(file).context("publish needs --brokers")?;
    let text = if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
        v
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    let lines = ingest::publish::read_lines(&text);
    let total = lines.messages.len();
    let mut refusals = Vec::new();
    if let Some(first) = lines.unkeyed.first() {
        refusals.push(format!(
            "{} of {total} lines are not a JSON object with a record_id (the first: line {first})",
            lines.unkeyed.len(),
        ));
    }
    if let Some(first) = lines.oversized.first() {
        refusals.push(format!(
            "{} of {total} lines are over 64 KiB, the largest event the tracker takes (the first: line {first})",
            lines.oversized.len(),
        ));
    }
    if strict && !refusals.is_empty() {
        bail!("{}; --strict publishes nothing", refusals.join("; "));
    }
    for what in &refusals {
        tracing::warn!("{what}: sent anyway; the tracker will quarantine them");
    }
    // Sent anyway (the topic is the producers' to choose), but said: the
    // tracker refuses to consume a topic whose settings break the projection.
    let topic = kafka.topic(file);
    if let Err(e) = ingest::topic_config::check(&brokers, &topic, std::time::Duration::from_secs(5))
    {
        tracing::warn!("{e}; the tracker refuses to consume this topic");
    }
    // Every line that could not be sent is named, with why; the others go.
    let failed = ingest::publish::send_each(&brokers, &topic, &lines.messages)?;
    for (i, reason) in &failed {
        eprintln!("line {}: not sent: {reason}", lines.numbers[*i]);
    }
    let sent = total - failed.len();
    let messages = if sent == 1 { "message" } else { "messages" };
    println!("published {sent} {messages} to {topic}");
    if !failed.is_empty() {
        bail!(
            "{} of {total} lines were not sent (listed above)",
            failed.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a token (the given one, or a new one) and the hash to configure.
pub fn hash_token(token: Option<String>) -> anyhow::Result<ExitCode> {
    let token = token.unwrap_or_else(new_token);
    // HTTP strips a header value's surrounding whitespace: such a token's
    // hash could never be presented.
    if token.trim() != token || token.is_empty() {
        bail!(
            "the token `{token}` is empty or starts or ends with whitespace, which no HTTP client \
             can send in X-Auth-Token: choose another (or omit it for a random one)"
        );
    }
    println!("token  {token}");
    println!("sha256 {}", hex::encode(query::hash_token(&token)));
    Ok(ExitCode::SUCCESS)
}

/// Compares a store with another store or with a fresh replay: 0 equal, 1
/// different, 2 could not compare (a store missing or in use, a replay that
/// failed or was interrupted).
pub fn verify(
    file: &FileConfig,
    store: &StoreArgs,
    against: Option<PathBuf>,
    replay: bool,
    kafka: &KafkaArgs,
) -> anyhow::Result<ExitCode> {
    Ok(
        compare(file, store, against, replay, kafka).unwrap_or_else(|e| {
            eprintln!("Error: could not compare: {}", one_line(&e));
            ExitCode::from(2)
        }),
    )
}

fn compare(
    file: &FileConfig,
    store: &StoreArgs,
    against: Option<PathBuf>,
    replay: bool,
    kafka: &KafkaArgs,
) -> anyhow::Result<ExitCode> {
    let dir = store.data_dir(file);
    let a = Store::open_read_only(&dir, store.cache_bytes(file))
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let topic_a = a.topic()?;
    let (b, _tmp);
    if replay {
        let brokers = kafka
            .brokers(file)
            .context("verify --replay needs --brokers")?;
        // The topic the store holds, not the default: a replay of another
        // topic would call a good store DIFFERENT.
        let mut config = kafka.ingest_config(file, &brokers);
        match (&topic_a, kafka.configured_topic(file)) {
            (Some(held), Some(given)) if *held != given => bail!(
                "the store holds the projection of topic {held:?}, and the topic to replay is \
                 {given:?}: give --topic {held:?} (or none)"
            ),
            (Some(held), _) => config.topic = held.clone(),
            (None, _) => {}
        }
        // Removed when dropped, on every way out of this function.
        let tmp = tempfile::Builder::new()
            .prefix("tracker-verify-")
            .tempdir()?;
        let dir = tmp.path().join("replay");
        let cache = store.cache_bytes(file);
        // A store made as of a time is compared with a replay as of it.
        ingest::replay::replay(config, &dir, cache, a.until(), true, &shutdown_token()?)?;
        b = Store::open(&dir, cache)
            .with_context(|| format!("opening the replayed store in {}", dir.display()))?;
        _tmp = Some(tmp);
    } else {
        let Some(other) = against else {
            bail!("give --against DIR or --replay")
        };
        let same = |p: &Path| std::fs::canonicalize(p).ok();
        if same(&other).is_some() && same(&other) == same(&store.data_dir(file)) {
            bail!(
                "--data-dir and --against name the same store ({}): there is nothing to compare",
                other.display()
            );
        }
        b = Store::open_read_only(&other, store.cache_bytes(file))
            .with_context(|| format!("opening the store in {}", other.display()))?;
        _tmp = None;
        if let (Some(ta), Some(tb)) = (&topic_a, b.topic()?) {
            if *ta != tb {
                bail!(
                    "the stores hold projections of different topics: {ta:?} and {tb:?}; \
                     there is nothing to compare"
                );
            }
        }
    }
    let c = common::store::verify::compare(&a, &b, MAX_LISTED)?;
    println!("digest a {}  ({} records)", c.digest_a, c.records_a);
    println!("digest b {}  ({} records)", c.digest_b, c.records_b);
    let (ca, cb) = (a.checkpoints(), b.checkpoints());
    println!("checkpoints a {}", common::store::checkpoints_text(&ca));
    println!("checkpoints b {}", common::store::checkpoints_text(&cb));
    let equal = c.equal();
    match equal {
        true => println!("EQUAL: the stores hold the same projection"),
        false => println!("DIFFERENT: {} record differences", c.differences),
    }
    if ca != cb {
        println!(
            "  the stores have read different offsets of the topic (checkpoints above): a copy \
             that is merely behind differs by what it has yet to read{}",
            match equal {
                true => ", and here the events between changed nothing",
                false => "",
            }
        );
    }
    if equal {
        return Ok(ExitCode::SUCCESS);
    }
    for id in &c.only_in_a {
        println!("  only in a: {id}");
    }
    for id in &c.only_in_b {
        println!("  only in b: {id}");
    }
    for id in &c.differing {
        println!("  differs:   {id}");
    }
    for i in &c.inconsistencies {
        println!("  inconsistent index: {i}");
    }
    let listed = (c.only_in_a.len() + c.only_in_b.len() + c.differing.len()) as u64;
    if c.differences > listed {
        println!(
            "  … and {} more not listed (the first {MAX_LISTED} of each kind are)",
            c.differences - listed
        );
    }
    Ok(ExitCode::FAILURE)
}

/// Record differences of each kind `verify` lists by id.
const MAX_LISTED: usize = 20;

/// Writes a project's records that match the filters to `out` (`-`:
/// standard output) in the format, from a read-only copy of a stopped
/// store; a file is written whole (renamed into place) or not at all.
pub fn export(
    file: &FileConfig,
    store: &StoreArgs,
    project: &str,
    filters: &[String],
    format: &str,
    out: &Path,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for f in filters {
        let Some((name, value)) = f.split_once('=') else {
            bail!("--filter {f:?}: a filter is NAME=VALUE (`status=fail`)");
        };
        query.append_pair(name, value);
    }
    query.append_pair("format", format);
    let stuck = <crate::config::HttpArgs as crate::cli::ParseEnv>::parse_env().stuck(file)?;
    let (q, format) = query::params::parse_export(Some(&query.finish()), &stuck)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = store.data_dir(file);
    let s = Store::open_read_only(&dir, store.cache_bytes(file))
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let source = s.export_source()?;
    let total = source
        .view
        .list(
            project,
            &common::store::ListQuery {
                with_count: Some(true),
                limit: Some(1),
                ..q.clone()
            },
        )?
        .count
        .unwrap_or(0);
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} export [{elapsed_precise}] {wide_bar} {pos}/{len} records (eta {eta})",
        )
        .expect("static template"),
    );
    // Called once per page (1,000 records).
    let tick = |n: u64| {
        bar.set_position(n);
        Ok(())
    };
    let trailer = if out.as_os_str() == "-" {
        let w = std::io::BufWriter::new(std::io::stdout().lock());
        source.export(project, &q, format, w, tick)?.1
    } else {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::NamedTempFile::new_in(parent)
            .with_context(|| format!("creating a file in {}", parent.display()))?;
        let (w, trailer) =
            source.export(project, &q, format, std::io::BufWriter::new(tmp), tick)?;
        let tmp = w.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(out)
            .with_context(|| format!("writing {}", out.display()))?;
        trailer
    };
    bar.finish_and_clear();
    eprintln!(
        "exported {} records of project {project} to {}\nsha256 {}\ncheckpoints {}",
        trailer.records,
        out.display(),
        trailer.sha256,
        common::store::checkpoints_text(&source.checkpoints)
    );
    Ok(ExitCode::SUCCESS)
}
