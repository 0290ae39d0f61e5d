//! `modelmux caption <id> --image P…`: a caption per image from an image captioner (BLIP).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use modelmux::adapters::vlm::{CaptionOptions, ImageCaptioner};
use serde_json::json;

use crate::common::{CatalogArgs, open_image, print_json};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`).
    model: String,
    /// Images to caption (PNG, JPEG or WebP).
    #[arg(long = "image", value_name = "FILE", required = true)]
    images: Vec<PathBuf>,
    /// Beam width; 1 is greedy decoding.
    #[arg(long, value_name = "N", default_value_t = 1)]
    beams: usize,
    /// The most new tokens [default: the catalog's].
    #[arg(long, value_name = "N")]
    max_new_tokens: Option<usize>,
    /// Text the caption starts with (conditional captioning), e.g. "a photo of".
    #[arg(long, value_name = "TEXT")]
    prefix: Option<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.beams == 0 {
        anyhow::bail!("--beams must be at least 1");
    }
    let manager = args.catalog.manager()?;
    let runtime = crate::common::runtime()?;
    let progress = crate::progress::Progress::new(args.json);
    let captioner = progress.lease::<Arc<dyn ImageCaptioner>>(&runtime, &manager, &args.model)?;
    let options = CaptionOptions {
        beams: args.beams,
        max_new_tokens: args.max_new_tokens,
        prefix: args.prefix.clone(),
    };
    let mut captions = Vec::new();
    let done = progress.bar("captioning", args.images.len() as u64, "images");
    for path in &args.images {
        let image = open_image(path)?;
        let caption = runtime.block_on(captioner.caption(&image, &options))?;
        done.inc(1);
        if !args.json {
            progress.suspend(|| println!("{}: {}", path.display(), caption.text));
        }
        captions.push(json!({
            "image": path.display().to_string(),
            "text": caption.text,
            "tokens": caption.tokens,
        }));
    }
    done.finish_and_clear();
    if args.json {
        print_json(&json!({ "model": captioner.model(), "captions": captions }));
    }
    Ok(ExitCode::SUCCESS)
}
