//! Logging that can never take the controller down.
//!
//! `tracing-subscriber` writes to stderr from whatever task logs. If stderr is a closed
//! pipe, its fmt layer reports the failed write with `eprintln!`, which panics; if stderr
//! is a full pipe or a stuck disk, the write blocks the task. Either turns a logging
//! problem into a stalled or dead failover engine. Here every line goes into a bounded
//! queue drained by one dedicated thread: a full queue or a failed write drops the line and
//! counts it ([`dropped_lines`], exported as `floatover_log_lines_dropped_total`), and no
//! task ever waits for stderr.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Output format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

static DROPPED: AtomicU64 = AtomicU64::new(0);
static PENDING: AtomicU64 = AtomicU64::new(0);
static SINK: OnceLock<SyncSender<Vec<u8>>> = OnceLock::new();

/// Lines lost because stderr could not take them (full queue or failed write).
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn sink() -> &'static SyncSender<Vec<u8>> {
    SINK.get_or_init(|| {
        let (tx, rx) = sync_channel::<Vec<u8>>(4096);
        let spawned = std::thread::Builder::new()
            .name("floatover-log".into())
            .spawn(move || {
                let mut err = std::io::stderr();
                while let Ok(line) = rx.recv() {
                    if err.write_all(&line).is_err() {
                        DROPPED.fetch_add(1, Ordering::Relaxed);
                    }
                    PENDING.fetch_sub(1, Ordering::Relaxed);
                }
            });
        if spawned.is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        tx
    })
}

/// One log line being formatted; handed to the writer thread when dropped.
pub struct LineWriter {
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        PENDING.fetch_add(1, Ordering::Relaxed);
        match sink().try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                PENDING.fetch_sub(1, Ordering::Relaxed);
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `MakeWriter` for tracing-subscriber.
#[derive(Clone, Copy, Default)]
pub struct NeverBlock;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for NeverBlock {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            buf: Vec::with_capacity(256),
        }
    }
}

/// Write one line to stderr through the same never-blocking path (panic reports, fatal
/// messages at exit).
pub fn emergency_line(msg: &str) {
    let mut w = LineWriter { buf: Vec::new() };
    let _ = writeln!(w, "{msg}");
}

/// Give the writer thread up to `max` to write what is queued (before the process exits).
pub fn drain(max: std::time::Duration) {
    let start = std::time::Instant::now();
    while PENDING.load(Ordering::Relaxed) > 0 && start.elapsed() < max {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Install the global subscriber. `FLOATOVER_LOG` sets the filter (EnvFilter syntax).
/// Colours only when stderr is a terminal.
pub fn init(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("FLOATOVER_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn")
        });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(NeverBlock)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Json => b.json().flatten_event(true).try_init(),
        LogFormat::Text => b.try_init(),
    };
}
