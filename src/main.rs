//! `tracker`: the replication tracker's one binary. By default it runs the
//! ingest worker and the query service as two tasks of one process over one
//! store (sled locks its directory, so they cannot be two processes); each can
//! also run alone. Also: replay, verify, publish and token hashing.

mod alloc;
mod cli;
mod cluster;
mod commands;
mod config;
mod process;
mod serve;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use config::FileConfig;
use process::{one_line, run_then_leave, runtime};
use serve::Mode;

/// Errors reach the operator as one line: the error and its causes, without
/// a backtrace (whatever RUST_BACKTRACE says) or Rust debug output.
fn main() -> ExitCode {
    match tracker() {
        Ok(code) => code,
        Err(e) => {
            fatal(&one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The line that ends a failed start or a refused command line. In JSON
/// logs the line a pipeline most needs is JSON too (in the log lines'
/// shape); like the text line, it is printed whatever RUST_LOG filters.
fn fatal(error: &str) {
    match common::telemetry::format_from_env() {
        Ok(common::telemetry::Format::Json) => {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let line = serde_json::json!({
                "timestamp": now,
                "level": "ERROR",
                "fields": { "message": "Error", "error": error },
                "target": "tracker",
            });
            eprintln!("{line}");
        }
        _ => eprintln!("Error: {error}"),
    }
}

/// The command line, or the exit for one clap refuses: its usage text as
/// clap prints it, or in JSON logs one JSON line (exit 2 either way).
/// `--help` and `--version` print as always.
fn parse_command_line() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    let args = cli::with_default_command(std::env::args_os().collect());
    Cli::try_parse_from(args).map_err(|e| {
        let json = matches!(
            common::telemetry::format_from_env(),
            Ok(common::telemetry::Format::Json)
        );
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => e.exit(),
            _ if json => {
                let text = e.render().to_string();
                let lines: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                let first = lines.join(" ");
                fatal(first.strip_prefix("error: ").unwrap_or(&first));
                ExitCode::from(2)
            }
            _ => e.exit(),
        }
    })
}

fn tracker() -> anyhow::Result<ExitCode> {
    #[cfg(feature = "alloc-stats")]
    alloc::stats::report_every(std::time::Duration::from_secs(5));
    common::telemetry::init().map_err(anyhow::Error::msg)?;
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(code) => return Ok(code),
    };
    let file = FileConfig::load(cli.config.as_deref())?;
    // The default command reads every setting as `run` does (flags aside).
    let command = cli.command_or_run();
    // Before any store starts its flush and merge threads.
    if let Some(store) = command.store_args() {
        common::priority::set_background_nice(store.background_nice(&file));
    }
    // serve::run has bounded every wait of its own (a worker gets 30 s):
    // what is still running after it is left behind.
    let serving = |file, mode| {
        let bound = std::time::Duration::from_secs(2);
        run_then_leave(runtime()?, serve::run(file, mode), bound).map(|()| ExitCode::SUCCESS)
    };
    match command {
        Command::Run {
            store,
            kafka,
            http,
            cluster,
        } => serving(
            file,
            Mode::Run {
                store,
                kafka,
                http,
                cluster,
            },
        ),
        Command::Ingest { store, kafka } => serving(file, Mode::Ingest { store, kafka }),
        Command::Query { store, http } => serving(file, Mode::Query { store, http }),
        Command::Replay {
            out,
            cache_mb,
            kafka,
            quiet,
            until,
        } => commands::replay(&file, &out, cache_mb, &kafka, quiet, until),
        Command::Verify {
            store,
            cluster: Some(url),
            token,
            ..
        } => Ok(cluster::verify(&file, &store, &url, token.as_deref())),
        Command::Verify {
            store,
            against,
            replay,
            kafka,
            ..
        } => commands::verify(&file, &store, against, replay, &kafka),
        Command::Digest { store } => commands::digest(&file, &store),
        Command::AcceptGap {
            store,
            kafka,
            partition,
        } => commands::accept_gap(&file, &store, &kafka, partition),
        Command::Publish {
            file: path,
            kafka,
            strict,
        } => commands::publish(&file, &path, &kafka, strict),
        Command::Export {
            store,
            project,
            filters,
            format,
            out,
            quiet,
        } => commands::export(&file, &store, &project, &filters, &format, &out, quiet),
        Command::HashToken { token } => commands::hash_token(token),
    }
}
