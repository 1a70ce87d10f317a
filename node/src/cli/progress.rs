//! Progress for long steps: a bar with rate and ETA on a terminal (stderr), then one plain
//! summary line (stdout), which is all a log sees when not on a terminal; nothing with `--quiet`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use suyuan_node::Progress;

/// One step's progress, drawn on stderr.
#[derive(Debug)]
pub(crate) struct Bar {
    quiet: bool,
    tty: bool,
    label: String,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    drawn: Instant,
}

impl Bar {
    /// Progress on stderr; silent if `quiet`.
    pub(crate) fn new(quiet: bool) -> Self {
        Bar {
            quiet,
            tty: std::io::stderr().is_terminal(),
            label: String::new(),
            unit: "rows",
            total: None,
            done: 0,
            started: Instant::now(),
            drawn: Instant::now(),
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, label: &str, total: Option<u64>) {
        self.label = label.to_string();
        self.total = total;
        self.done = 0;
        self.started = Instant::now();
        self.drawn = self.started;
    }

    fn unit(&mut self, unit: &'static str) {
        self.unit = unit;
    }

    fn set(&mut self, done: u64) {
        self.done = done;
        if self.quiet || !self.tty || self.drawn.elapsed() < Duration::from_millis(100) {
            return;
        }
        self.drawn = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / elapsed;
        let line = match self.total {
            Some(t) if t > 0 => {
                let frac = (self.done as f64 / t as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                let eta = if rate > 0.0 {
                    (t.saturating_sub(self.done)) as f64 / rate
                } else {
                    0.0
                };
                format!(
                    "{}: [{}{}] {:>3.0}% {}/{} {} {:.0}/s ETA {:.0}s",
                    self.label,
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    frac * 100.0,
                    self.done,
                    t,
                    self.unit,
                    rate,
                    eta
                )
            }
            _ => format!("{}: {} {} {:.0}/s", self.label, self.done, self.unit, rate),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Clears the bar and prints one summary line (unless quiet). The line goes to stdout, so
    /// that stderr carries nothing but errors (and the bar, on a terminal).
    fn finish(&mut self) {
        if self.quiet {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = self.done as f64 / elapsed.max(1e-3);
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
        outln!(
            "{}: {} {} in {:.1}s ({:.0}/s)",
            self.label,
            self.done,
            self.unit,
            elapsed,
            rate
        );
    }

    fn say(&mut self, line: &str) {
        if !self.quiet {
            super::say(line);
        }
    }
}
