//! Progress bars for training.

use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Every bar of the process, so that trainings running side by side ([`crate::concurrently`])
/// each draw on their own line instead of over each other.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// One bar per epoch showing batches done and the running loss; hidden in quiet mode (tests).
pub struct EpochProgress {
    bar: ProgressBar,
    quiet: bool,
}

impl EpochProgress {
    /// A bar for `batches` batches of epoch `epoch` of `epochs`.
    pub fn new(label: &str, epoch: usize, epochs: usize, batches: usize, quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::with_draw_target(Some(batches as u64), ProgressDrawTarget::hidden())
        } else {
            bars().add(ProgressBar::new(batches as u64))
        };
        bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {elapsed}").expect("valid template").progress_chars("=> "));
        bar.set_prefix(format!("{label} epoch {}/{epochs}", epoch + 1));
        EpochProgress { bar, quiet }
    }

    /// One batch done with this loss.
    pub fn batch(&self, loss: f64) {
        self.bar.inc(1);
        self.bar.set_message(format!("loss {loss:.4}"));
    }

    /// Ends the bar, leaving `summary` on a line of its own above the running bars (unless quiet).
    pub fn finish(&self, summary: &str) {
        if self.quiet {
            self.bar.finish();
            return;
        }
        let line = format!("{} {summary} ({:.1} s)", self.bar.prefix(), self.bar.elapsed().as_secs_f64());
        self.bar.finish_and_clear();
        bars().remove(&self.bar);
        // Fails only when the terminal is gone; the summary is then lost with the bars.
        let _ = bars().println(line);
    }
}
