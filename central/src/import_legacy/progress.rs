//! Progress of a long import: a bar on a terminal (indicatif), plain lines otherwise (logs,
//! CI, pipes), so a person sees it move and a log file gets a few readable lines, not escape codes.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Reports the progress of one phase after another (`parsing`, `devices`).
pub struct Progress {
    output: Output,
}

enum Output {
    Bar(Option<ProgressBar>),
    Lines { last: Option<Instant>, phase: &'static str },
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() { Self::bar() } else { Self::lines() }
    }

    /// Always a bar (drawn to stderr).
    pub fn bar() -> Self {
        Progress { output: Output::Bar(None) }
    }

    /// Always plain lines on stderr, at most one every two seconds per phase.
    pub fn lines() -> Self {
        Progress { output: Output::Lines { last: None, phase: "" } }
    }

    /// `done` of `total` items of `phase` are through. A phase ends with `done == total`.
    pub fn update(&mut self, phase: &'static str, done: usize, total: usize) {
        match &mut self.output {
            Output::Bar(bar) => {
                let bar = bar.get_or_insert_with(|| new_bar(phase, total));
                if bar.message() != phase {
                    bar.finish();
                    *bar = new_bar(phase, total);
                }
                bar.set_position(done as u64);
                if done >= total {
                    bar.finish();
                }
            }
            Output::Lines { last, phase: current } => {
                let new_phase = *current != phase;
                let due = last.is_none_or(|t| t.elapsed() >= LINE_EVERY);
                if new_phase || due || done >= total {
                    eprintln!("{}", line(phase, done, total));
                    *last = Some(Instant::now());
                    *current = phase;
                }
            }
        }
    }
}

fn new_bar(phase: &'static str, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("import-legacy: {msg:<8} [{bar:40}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(phase);
    bar
}

/// One plain progress line.
fn line(phase: &str, done: usize, total: usize) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!("import-legacy: {phase} {done}/{total} ({percent}%)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_phase_count_and_share() {
        assert_eq!(line("devices", 250, 1000), "import-legacy: devices 250/1000 (25%)");
        assert_eq!(line("parsing", 0, 0), "import-legacy: parsing 0/0 (100%)");
    }

    #[test]
    fn a_bar_moves_through_phases_without_drawing_to_a_pipe() {
        // indicatif draws nothing when stderr is not a terminal, as under `cargo test`.
        let mut p = Progress::bar();
        p.update("parsing", 10, 20);
        p.update("parsing", 20, 20);
        p.update("devices", 1, 3);
        let Output::Bar(Some(bar)) = &p.output else { panic!("a bar was made") };
        assert_eq!((bar.message(), bar.position(), bar.length()), ("devices".to_owned(), 1, Some(3)));
    }
}
