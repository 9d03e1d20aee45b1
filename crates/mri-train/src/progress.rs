//! Progress bars for training.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar per epoch showing batches done and the running loss; hidden in quiet mode (tests).
pub struct EpochProgress {
    bar: ProgressBar,
}

impl EpochProgress {
    /// A bar for `batches` batches of epoch `epoch` of `epochs`.
    pub fn new(label: &str, epoch: usize, epochs: usize, batches: usize, quiet: bool) -> Self {
        let bar = ProgressBar::new(batches as u64);
        if quiet {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {elapsed}").expect("valid template").progress_chars("=> "));
        bar.set_prefix(format!("{label} epoch {}/{epochs}", epoch + 1));
        EpochProgress { bar }
    }

    /// One batch done with this loss.
    pub fn batch(&self, loss: f64) {
        self.bar.inc(1);
        self.bar.set_message(format!("loss {loss:.4}"));
    }

    /// Ends the bar, leaving `summary` (unless quiet).
    pub fn finish(&self, summary: &str) {
        self.bar.finish_with_message(summary.to_string());
    }
}
