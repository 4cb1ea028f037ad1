//! Tracing set-up shared by every binary: `RUST_LOG` filters (default
//! `info`), `TRACKER_LOG_FORMAT` is `text` (the default) or `json` (JSON
//! lines); colours only when stderr is a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Reads `TRACKER_LOG_FORMAT` (case-insensitive); anything but `text` or
/// `json` is an error naming the variable, not a silent fallback.
pub fn format_from_env() -> Result<Format, String> {
    match std::env::var("TRACKER_LOG_FORMAT") {
        Err(_) => Ok(Format::Text),
        Ok(v) => match v.to_ascii_lowercase().as_str() {
            "text" | "" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "TRACKER_LOG_FORMAT must be `text` or `json`, not `{v}`"
            )),
        },
    }
}

/// Installs the subscriber. A bad `TRACKER_LOG_FORMAT` is returned.
pub fn init() -> Result<(), String> {
    let format = format_from_env()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        Format::Json => builder.json().try_init(),
        Format::Text => builder.try_init(),
    };
    Ok(())
}
