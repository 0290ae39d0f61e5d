//! `modelmux embed <id> (--text T… | --image P…)`: embeddings from a text encoder or from a
//! vision-language dual encoder (which embeds texts and images in one space).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use modelmux::adapters::lm::TextEncoder;
use modelmux::adapters::vlm::ImageTextEncoder;
use modelmux::registry::Family;
use serde_json::json;

use crate::common::{CatalogArgs, open_image, print_json, spec};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`).
    model: String,
    /// Texts to embed.
    #[arg(
        long = "text",
        value_name = "TEXT",
        required_unless_present = "images",
        conflicts_with = "images"
    )]
    texts: Vec<String>,
    /// Images to embed (PNG, JPEG or WebP), with a vision-language model.
    #[arg(long = "image", value_name = "FILE")]
    images: Vec<PathBuf>,
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
    let family = spec(&manager, &args.model)?.family;
    let (model, inputs, vectors) = if family == Family::Vlm {
        let encoder =
            progress.lease::<Arc<dyn ImageTextEncoder>>(&runtime, &manager, &args.model)?;
        if args.images.is_empty() {
            let vectors = runtime.block_on(encoder.embed_texts(&args.texts))?;
            (encoder.model().to_owned(), args.texts.clone(), vectors)
        } else {
            let images = args
                .images
                .iter()
                .map(|p| open_image(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let vectors = runtime.block_on(encoder.embed_images(&images))?;
            let names = args
                .images
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            (encoder.model().to_owned(), names, vectors)
        }
    } else {
        if !args.images.is_empty() {
            bail!(
                "{} is a {} model and embeds only text; --image needs a vision-language model (clip, align, flava)",
                args.model,
                family.as_str()
            );
        }
        let encoder = progress.lease::<Arc<dyn TextEncoder>>(&runtime, &manager, &args.model)?;
        let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
        let vectors = encoder.embed(&texts)?;
        (encoder.model().to_owned(), args.texts.clone(), vectors)
    };
    if args.json {
        let embeddings: Vec<_> = inputs
            .iter()
            .zip(&vectors)
            .map(|(input, vector)| json!({ "input": input, "vector": vector }))
            .collect();
        print_json(&json!({ "model": model, "embeddings": embeddings }));
    } else {
        for (input, vector) in inputs.iter().zip(&vectors) {
            let head: Vec<String> = vector.iter().take(6).map(|v| format!("{v:.4}")).collect();
            println!(
                "{input:?}: [{}, …] ({} dimensions)",
                head.join(", "),
                vector.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
