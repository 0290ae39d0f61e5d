//! `modelmux embed <id> --text T…`: embeddings from a text encoder.

use std::process::ExitCode;
use std::sync::Arc;

use modelmux::adapters::lm::TextEncoder;
use serde_json::json;

use crate::common::CatalogArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`).
    model: String,
    /// Texts to embed.
    #[arg(long = "text", value_name = "TEXT", required = true)]
    texts: Vec<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manager = args.catalog.manager()?;
    let runtime = crate::common::runtime()?;
    let encoder = runtime.block_on(manager.get_model::<Arc<dyn TextEncoder>>(&args.model))?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let vectors = encoder.embed(&texts)?;
    if args.json {
        let embeddings: Vec<_> = texts
            .iter()
            .zip(&vectors)
            .map(|(input, vector)| json!({ "input": input, "vector": vector }))
            .collect();
        println!(
            "{}",
            json!({ "model": encoder.model(), "embeddings": embeddings })
        );
    } else {
        for (input, vector) in texts.iter().zip(&vectors) {
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
