//! `modelmux generate <id> --prompt P`: text from a language model.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;
use std::sync::Arc;

use modelmux::adapters::lm::{GenerationOptions, Prompt, TextGenerator};
use serde_json::json;

use crate::common::CatalogArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`).
    model: String,
    /// What to continue.
    #[arg(long)]
    prompt: String,
    /// The most new tokens [default: the catalog's, else 128].
    #[arg(long, value_name = "N")]
    max_new_tokens: Option<usize>,
    /// Sampling temperature; greedy decoding when no sampling option is given.
    #[arg(long, value_name = "T")]
    temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, value_name = "P")]
    top_p: Option<f32>,
    /// Keep only the K most likely tokens before sampling.
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Seed of the sampler, to repeat a sampled generation.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of streaming text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manager = args.catalog.manager()?;
    let runtime = crate::common::runtime()?;
    let generator = runtime.block_on(manager.get_model::<Arc<dyn TextGenerator>>(&args.model))?;
    let options = GenerationOptions {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        ..GenerationOptions::default()
    };
    let prompts = [Prompt::from(args.prompt.as_str())];
    let json = args.json;
    let mut stdout = std::io::stdout();
    let mut results = generator.generate_stream(&prompts, &options, &mut |event| {
        if !json {
            let _ = write!(stdout, "{}", event.text);
            let _ = stdout.flush();
        }
        ControlFlow::Continue(())
    })?;
    let generation = results
        .pop()
        .ok_or_else(|| anyhow::format_err!("the model returned no generation"))?;
    if json {
        println!(
            "{}",
            json!({ "model": generator.model(), "text": generation.text, "tokens": generation.tokens })
        );
    } else {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
