//! The daemon's one tracing subscriber. Under systemd (`$JOURNAL_STREAM` set) lines carry a
//! syslog priority prefix (`<3>` error … `<7>` debug) that journald turns into priorities, and
//! no timestamps or colours (journald adds its own); on a terminal, the usual pretty format.

use std::fmt;

use rdc_config::LogFormat;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

struct Journald;

impl<S, N> FormatEvent<S, N> for Journald
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let prio = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(w, "<{prio}>{}: ", event.metadata().target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the subscriber. `RUST_LOG` overrides the configured level.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let journald = match format {
        LogFormat::Journald => true,
        LogFormat::Auto => std::env::var_os("JOURNAL_STREAM").is_some(),
        _ => false,
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if journald {
        b.event_format(Journald).try_init()
    } else if format == LogFormat::Json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}
