//! Progress bars on stderr (`indicatif`) for the CLI's slow work: model loads, diffusion steps,
//! generated tokens, images captioned and the pipeline's stages.
//!
//! Bars are drawn only when stderr is a terminal and `--json` is not set; otherwise every bar is
//! hidden and costs nothing, so tests, pipes and JSON output see exactly what the command prints.
//! Lines a command prints while bars are up go through [`Progress::suspend`], which clears the
//! bars, prints, and draws them again below.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use modelmux::{Lease, ManagerError, ModelManager};

/// How long a model load may take before its spinner appears: a warm model's lease returns at
/// once and should not flash a spinner.
const LOAD_GRACE: Duration = Duration::from_millis(300);

/// How often spinners and elapsed times are redrawn while nothing else moves them.
const TICK: Duration = Duration::from_millis(120);

/// A bar: its label, the bar, the count of `unit`s, the elapsed time and the message.
fn bar_template(unit: &str) -> String {
    format!("{{prefix}} [{{bar:20}}] {{pos}}/{{len}} {unit} {{elapsed:>3}} {{msg}}")
}

/// A counter: a spinner, its label, the count of `unit`s so far, the elapsed time, the message.
fn counter_template(unit: &str) -> String {
    format!("{{spinner}} {{prefix}} {{pos}} {unit} {{elapsed:>3}} {{msg}}")
}

/// A model load: a spinner, the model and the elapsed time.
const LOADING_TEMPLATE: &str = "{spinner} loading {prefix} {elapsed:>3}";

/// The bars of one command, stacked in the order they were made.
#[derive(Debug, Clone)]
pub(crate) struct Progress {
    bars: MultiProgress,
    visible: bool,
}

impl Progress {
    /// Bars on stderr when it is a terminal and `json` is false; hidden bars otherwise.
    pub(crate) fn new(json: bool) -> Self {
        Self::with_visibility(!json && std::io::stderr().is_terminal())
    }

    fn with_visibility(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            bars: MultiProgress::with_draw_target(target),
            visible,
        }
    }

    /// A bar of `total` steps counted in `unit` (e.g. "steps", "tokens", "stages"), labelled
    /// `label`; its message (`set_message`) is shown after the count.
    pub(crate) fn bar(&self, label: &str, total: u64, unit: &str) -> ProgressBar {
        self.add(ProgressBar::new(total), &bar_template(unit))
            .with_prefix(label.to_owned())
    }

    /// A counter for work whose end is not known in advance (e.g. tokens up to a model's own
    /// limit): a spinner, the count so far in `unit` and the elapsed time.
    pub(crate) fn counter(&self, label: &str, unit: &str) -> ProgressBar {
        self.add(ProgressBar::no_length(), &counter_template(unit))
            .with_prefix(label.to_owned())
    }

    /// Awaits `work` (a model's lease or load); when it takes longer than a moment, a spinner
    /// says which model is loading until it is done.
    pub(crate) async fn loading<T>(&self, model: &str, work: impl Future<Output = T>) -> T {
        if !self.visible {
            return work.await;
        }
        let mut work = std::pin::pin!(work);
        if let Ok(done) = tokio::time::timeout(LOAD_GRACE, &mut work).await {
            return done;
        }
        let spinner = self
            .add(ProgressBar::no_length(), LOADING_TEMPLATE)
            .with_prefix(model.to_owned());
        let done = work.await;
        spinner.finish_and_clear();
        done
    }

    /// Leases `model` from `manager` (loading it if it must), with the loading spinner.
    pub(crate) fn lease<T: Send + Sync + 'static>(
        &self,
        runtime: &tokio::runtime::Runtime,
        manager: &ModelManager,
        model: &str,
    ) -> Result<Lease<T>, ManagerError> {
        runtime.block_on(self.loading(model, manager.get_model::<T>(model)))
    }

    /// Runs `print` (which writes lines to stdout or stderr) with the bars cleared, then draws
    /// them again below what it printed.
    pub(crate) fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.bars.suspend(print)
    }

    /// Adds `bar` with the style `template`; hidden bars get neither a style nor a ticker.
    fn add(&self, bar: ProgressBar, template: &str) -> ProgressBar {
        if !self.visible {
            return ProgressBar::hidden();
        }
        // The templates are constants of this module; a bad one falls back to the plain style.
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("#>-");
        let bar = self.bars.add(bar.with_style(style));
        bar.enable_steady_tick(TICK);
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_progress_draws_nothing_and_awaits_loads_directly() {
        let progress = Progress::with_visibility(false);
        let bar = progress.bar("denoising", 4, "steps");
        bar.inc(3);
        assert!(bar.is_hidden());
        assert!(progress.counter("generating", "tokens").is_hidden());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(progress.loading("m", async { 7 })), 7);
        assert_eq!(progress.suspend(|| 5), 5);
    }

    #[test]
    fn every_template_parses() {
        for template in [
            bar_template("steps"),
            counter_template("tokens"),
            LOADING_TEMPLATE.to_owned(),
        ] {
            let style = ProgressStyle::with_template(&template);
            assert!(style.is_ok(), "{template}: {:?}", style.err());
        }
    }
}
