//! Progress bars on stderr while the flow runs; nothing when stderr is not a terminal. Log lines
//! go through [`LogWriter`], which prints them above the bars instead of through them.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

/// Bars on stderr if `requested` and stderr is a terminal; `None` otherwise (piped output, CI).
pub fn terminal_bars(requested: bool) -> Option<MultiProgress> {
    (requested && std::io::stderr().is_terminal())
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)))
}

/// A `tracing_subscriber` writer to stderr that clears the bars (if any) while it writes a line.
#[derive(Debug, Clone, Default)]
pub struct LogWriter {
    bars: Option<MultiProgress>,
}

impl LogWriter {
    /// Writes around `bars`.
    pub fn new(bars: Option<MultiProgress>) -> Self {
        LogWriter { bars }
    }
}

/// One event's bytes, written out when dropped.
#[derive(Debug)]
pub struct LogLine {
    buf: Vec<u8>,
    bars: Option<MultiProgress>,
}

impl Write for LogLine {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        let write = || {
            // Nowhere to report a failed write to stderr.
            let _ = std::io::stderr().lock().write_all(&buf);
        };
        match &self.bars {
            Some(bars) => bars.suspend(write),
            None => write(),
        }
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine {
            buf: Vec::new(),
            bars: self.bars.clone(),
        }
    }
}

/// Two bars: checkouts, and outbox jobs delivered (or dead-lettered) of those recorded.
#[derive(Debug, Clone)]
pub struct Progress {
    orders: ProgressBar,
    jobs: ProgressBar,
    _multi: MultiProgress,
}

impl Progress {
    /// Bars for `orders` orders in `bars`; counted but not drawn when `None`.
    pub fn new(orders: usize, bars: Option<MultiProgress>) -> Self {
        let multi =
            bars.unwrap_or_else(|| MultiProgress::with_draw_target(ProgressDrawTarget::hidden()));
        let style = ProgressStyle::with_template(
            "{prefix:>12} [{bar:40.cyan/blue}] {pos:>5}/{len:<5} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let orders_bar = multi.add(ProgressBar::new(orders as u64));
        orders_bar.set_style(style.clone());
        orders_bar.set_prefix("checkout");
        let jobs = multi.add(ProgressBar::new(1));
        jobs.set_style(style);
        jobs.set_prefix("side effects");
        orders_bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            orders: orders_bar,
            jobs,
            _multi: multi,
        }
    }

    /// One more order through checkout.
    pub fn order_done(&self, state: &str) {
        self.orders.inc(1);
        self.orders.set_message(state.to_owned());
    }

    /// Jobs finished (done or dead) out of those recorded so far.
    pub fn jobs(&self, finished: u64, recorded: u64, note: &str) {
        self.jobs.set_length(recorded.max(1));
        self.jobs.set_position(finished);
        self.jobs.set_message(note.to_owned());
    }

    /// Clears the bars.
    pub fn finish(&self) {
        self.orders.finish_and_clear();
        self.jobs.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bars_still_count() {
        let p = Progress::new(3, None);
        p.order_done("paid");
        p.jobs(2, 5, "delivering");
        assert_eq!(p.orders.position(), 1);
        assert_eq!((p.jobs.position(), p.jobs.length()), (2, Some(5)));
        p.finish();
        assert!(terminal_bars(false).is_none());
    }

    #[test]
    fn log_lines_are_written_whole() {
        let w = LogWriter::new(None);
        let mut line = w.make_writer();
        line.write_all(b"a log line\n").unwrap();
        line.flush().unwrap();
        assert_eq!(line.buf, b"a log line\n");
    }
}
