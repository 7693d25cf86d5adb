//! The trace of a run: the agents' own log lines (production `tracing` calls), each
//! stamped with simulated time and the member it came from, interleaved with the
//! world's events. Deterministic, so one seed prints the same trace byte for byte.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The member a span belongs to.
struct Member(String);

/// Where the run on this thread writes its trace.
#[derive(Clone)]
pub struct Sink {
    /// The trace lines.
    pub lines: Arc<Mutex<Vec<String>>>,
    /// Virtual time zero.
    pub start: Instant,
}

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Install the process-wide subscriber once (a scoped subscriber per run would let
/// concurrent runs race on tracing's callsite cache and lose lines). `debug` on the
/// first call decides whether DEBUG lines are kept.
pub fn install(debug: bool) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer as _;
        let level = if debug {
            tracing_subscriber::filter::LevelFilter::DEBUG
        } else {
            tracing_subscriber::filter::LevelFilter::INFO
        };
        let subscriber = tracing_subscriber::registry().with(TraceLayer.with_filter(level));
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Run `f` with its agents' log lines going to `sink`.
pub fn with_sink<R>(sink: Sink, f: impl FnOnce() -> R) -> R {
    SINK.with(|s| *s.borrow_mut() = Some(sink));
    let r = f();
    SINK.with(|s| *s.borrow_mut() = None);
    r
}

/// A layer that appends agent log lines to the trace of the run on this thread.
pub struct TraceLayer;

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    member: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "member" => self.member = Some(value.to_string()),
            n => {
                let _ = write!(self.rest, " {n}={value}");
            }
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "member" => self.member = Some(format!("{value:?}")),
            n => {
                let _ = write!(self.rest, " {n}={value:?}");
            }
        }
    }
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let (Some(m), Some(span)) = (f.member, ctx.span(id)) {
            span.extensions_mut().insert(Member(m));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(sink) = SINK.with(|s| s.borrow().clone()) else {
            return;
        };
        let level = *event.metadata().level();
        let member = ctx
            .event_scope(event)
            .and_then(|scope| {
                scope
                    .from_root()
                    .find_map(|s| s.extensions().get::<Member>().map(|m| m.0.clone()))
            })
            .unwrap_or_else(|| "-".into());
        let mut f = Fields::default();
        event.record(&mut f);
        let ms = Instant::now().duration_since(sink.start).as_millis() as u64;
        let tag = match level {
            Level::ERROR => "ERROR ",
            Level::WARN => "WARN ",
            Level::DEBUG => "debug ",
            _ => "",
        };
        let line = format!(
            "{} {member:<7} {tag}{}{}",
            crate::world::fmt_time(ms),
            f.message,
            f.rest
        );
        sink.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}
