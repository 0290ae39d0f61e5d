//! `modelmux classify <id> --image P… [--labels a,b,…]`: attribute scores from a dedicated
//! image classifier, or zero-shot from a vision-language dual encoder (free labels, or the
//! attribute prompt sets of its catalog entry).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use modelmux::adapters::specialized::{AttributeScores, ImageClassifier, ZeroShotAttributes};
use modelmux::adapters::vlm::ImageTextEncoder;
use modelmux::registry::Family;
use serde_json::json;

use crate::common::{CatalogArgs, open_image, print_json, spec};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`): an image classifier or a dual encoder (clip, align, flava).
    model: String,
    /// Images to classify (PNG, JPEG or WebP).
    #[arg(long = "image", value_name = "FILE", required = true)]
    images: Vec<PathBuf>,
    /// Zero-shot labels for a dual encoder, comma-separated [default: the catalog's attribute prompts].
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    labels: Vec<String>,
    /// The prompt each zero-shot label is filled into (`{}` marks the place).
    #[arg(long, value_name = "TEXT", default_value = "a photo of {}")]
    template: String,
    /// How many labels to print per attribute (text output).
    #[arg(long, value_name = "N", default_value_t = 5)]
    top: usize,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manager = args.catalog.manager()?;
    let runtime = crate::common::runtime()?;
    let progress = crate::progress::Progress::new(args.json);
    let spec = spec(&manager, &args.model)?.clone();
    let images = args
        .images
        .iter()
        .map(|p| open_image(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let labels: Vec<String> = args
        .labels
        .iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let (model, results) = match spec.family {
        Family::Vlm => {
            let encoder =
                progress.lease::<Arc<dyn ImageTextEncoder>>(&runtime, &manager, &args.model)?;
            let shared: Arc<dyn ImageTextEncoder> = Arc::clone(&*encoder);
            let classifier = if labels.is_empty() {
                ZeroShotAttributes::from_spec(shared, &spec)?
            } else {
                ZeroShotAttributes::from_labels(shared, &labels, &args.template)?
            };
            let mut results = runtime.block_on(classifier.classify(&images))?;
            if !labels.is_empty() {
                // The scores come back under the filled-in prompts; people asked about the
                // labels, so the labels are what is reported.
                for scores in results.iter_mut().flatten() {
                    for (score, label) in scores.labels.iter_mut().zip(&labels) {
                        score.label.clone_from(label);
                    }
                }
            }
            (encoder.model().to_owned(), results)
        }
        Family::Specialized => {
            if !labels.is_empty() {
                bail!(
                    "{} classifies into its own labels; --labels needs a vision-language dual encoder",
                    args.model
                );
            }
            let classifier =
                progress.lease::<Arc<dyn ImageClassifier>>(&runtime, &manager, &args.model)?;
            let results = runtime.block_on(classifier.classify(&images))?;
            (classifier.model().to_owned(), results)
        }
        other => bail!(
            "{} is a {} model; classify needs an image classifier or a dual encoder",
            args.model,
            other.as_str()
        ),
    };
    if args.json {
        let rows: Vec<_> = args
            .images
            .iter()
            .zip(&results)
            .map(|(path, attributes)| {
                json!({
                    "image": path.display().to_string(),
                    "attributes": attributes.iter().map(attribute_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&json!({ "model": model, "results": rows }));
    } else {
        for (path, attributes) in args.images.iter().zip(&results) {
            println!("{}", path.display());
            for scores in attributes {
                println!("  {}", attribute_line(scores, args.top));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One attribute as JSON: its labels best first, the best label, and the expected value when
/// the labels are numbers (an age estimate).
pub(crate) fn attribute_json(scores: &AttributeScores) -> serde_json::Value {
    json!({
        "attribute": scores.attribute,
        "best": scores.best().map(|b| b.label.clone()),
        "expected_value": scores.expected_value(),
        "labels": scores.sorted(),
    })
}

/// One attribute as a line: the `top` best labels with their scores.
pub(crate) fn attribute_line(scores: &AttributeScores, top: usize) -> String {
    let best: Vec<String> = scores
        .sorted()
        .iter()
        .take(top.max(1))
        .map(|l| format!("{} {:.3}", l.label, l.score))
        .collect();
    let expected = scores
        .expected_value()
        .map(|v| format!(" (expected value {v:.1})"))
        .unwrap_or_default();
    format!("{}: {}{expected}", scores.attribute, best.join(", "))
}
