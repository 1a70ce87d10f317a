//! Progress for long steps: a bar with rate and ETA on a terminal (stderr), then one plain
//! summary line (stdout), which is all a log sees when not on a terminal; nothing with `--quiet`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// One step's progress, drawn on stderr.
#[derive(Debug)]
pub struct Progress {
    quiet: bool,
    tty: bool,
    label: String,
    unit: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    drawn: Instant,
}

impl Progress {
    /// Progress on stderr; silent if `quiet`.
    pub fn new(quiet: bool) -> Self {
        Progress {
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

    /// Silent progress (for library callers and tests).
    pub fn silent() -> Self {
        Self::new(true)
    }

    /// Begins a step of `total` units (if known).
    pub fn start(&mut self, label: &str, total: Option<u64>) {
        self.label = label.to_string();
        self.total = total;
        self.done = 0;
        self.started = Instant::now();
        self.drawn = self.started;
    }

    /// Sets the unit name (default "rows").
    pub fn unit(&mut self, unit: &'static str) {
        self.unit = unit;
    }

    /// Adds `n` units done.
    pub fn tick(&mut self, n: u64) {
        self.set(self.done + n);
    }

    /// Sets the units done.
    pub fn set(&mut self, done: u64) {
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

    /// Ends the step: clears the bar and prints one summary line (unless quiet). The line goes
    /// to stdout, so that stderr carries nothing but errors (and the bar, on a terminal).
    pub fn finish(&mut self) {
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
        println!(
            "{}: {} {} in {:.1}s ({:.0}/s)",
            self.label, self.done, self.unit, elapsed, rate
        );
    }
}
