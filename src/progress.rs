//! What a person watching a run sees: a progress bar per epoch on a terminal (plain lines
//! otherwise), a line per epoch, notes, and the summary table at the end.

use crate::train::{EpochRecord, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// The terminal [`Observer`].
pub struct Ui {
    bar: Option<ProgressBar>,
    tty: bool,
    loss: Option<f64>,
}

impl Default for Ui {
    fn default() -> Self {
        Ui { bar: None, tty: std::io::stdout().is_terminal(), loss: None }
    }
}

impl Ui {
    /// Clears the bar of an unfinished epoch.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for Ui {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, steps: usize) {
        if self.tty {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} {bar:30} {pos}/{len} steps {msg} ETA {eta}")
                    .expect("valid template"),
            );
            bar.set_prefix(format!("{}/{epochs}", epoch + 1));
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, done: usize, running_loss: Option<f64>, samples_per_s: f64) {
        if running_loss.is_some() {
            self.loss = running_loss;
        }
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            let loss = self.loss.map_or(String::new(), |l| format!("loss {l:.4} "));
            b.set_message(format!("{loss}{samples_per_s:.0} samples/s"));
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        self.finish();
        let val = if r.val_loss.is_nan() {
            String::new()
        } else {
            format!("val loss {:.4} acc {:.4} | ", r.val_loss, r.val_acc)
        };
        println!(
            "epoch {:>3}: train loss {:.4} acc {:.4} | {val}test loss {:.4} acc {:.4} | lr {:.2e} | {:.0} samples/s, {:.1} s",
            r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc, r.lr, r.samples_per_s, r.epoch_seconds
        );
    }

    fn note(&mut self, msg: &str) {
        println!("{msg}");
    }
}

/// The table of every epoch printed when a run ends.
/// The table of every epoch printed when a run ends (validation columns when there is a
/// validation set).
pub fn summary(epochs: &[EpochRecord]) -> String {
    let with_val = epochs.iter().any(|r| !r.val_loss.is_nan());
    let val_head = if with_val { format!(" {:>9} {:>8}", "val loss", "val acc") } else { String::new() };
    let mut s = format!(
        "\n{:>5} {:>10} {:>9}{val_head} {:>10} {:>9} {:>10} {:>8}\n",
        "epoch", "train loss", "train acc", "test loss", "test acc", "lr", "time s"
    );
    for r in epochs {
        let val = if with_val { format!(" {:>9.4} {:>8.4}", r.val_loss, r.val_acc) } else { String::new() };
        s += &format!(
            "{:>5} {:>10.4} {:>9.4}{val} {:>10.4} {:>9.4} {:>10.3e} {:>8.1}\n",
            r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc, r.lr, r.elapsed_s
        );
    }
    s
}
