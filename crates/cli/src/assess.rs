//! `modelmux assess <id> --image P…`: a quality score per image, with what the score means.
//!
//! An MLP head over another model's embeddings (the aesthetic predictor) is paired here with the
//! encoder its catalog entry names, both leased from the one manager, so the ledger accounts
//! for both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use modelmux::ModelManager;
use modelmux::adapters::specialized::{
    AestheticAssessor, EmbeddingScorer, QualityAssessor, ScoreScale,
};
use modelmux::adapters::vlm::ImageTextEncoder;
use modelmux::registry::Architecture;
use serde_json::json;

use crate::common::{CatalogArgs, open_image, print_json, spec};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model (`id` or `id@version`): a quality assessor or an aesthetic head.
    model: String,
    /// Images to assess (PNG, JPEG or WebP).
    #[arg(long = "image", value_name = "FILE", required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A quality assessor and the leases that keep its models loaded while it is used.
pub(crate) struct Assessor {
    pub(crate) assessor: Arc<dyn QualityAssessor>,
    /// Held only so the models stay leased.
    _leases: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Assessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assessor")
            .field("model", &self.assessor.model())
            .finish_non_exhaustive()
    }
}

/// Leases the assessor `reference` names: an aesthetic head with its encoder, or a model that
/// is a quality assessor itself.
pub(crate) async fn lease_assessor(
    manager: &ModelManager,
    reference: &str,
) -> anyhow::Result<Assessor> {
    if spec(manager, reference)?.architecture == Architecture::MlpHead {
        let head = manager
            .get_model::<Arc<dyn EmbeddingScorer>>(reference)
            .await?;
        let input = head.input_model().map(str::to_owned).with_context(|| {
            format!("{reference} does not name the encoder it reads (`params.extra.input_model`)")
        })?;
        let encoder = manager
            .get_model::<Arc<dyn ImageTextEncoder>>(&input)
            .await
            .with_context(|| format!("{reference} reads embeddings of {input}"))?;
        let assessor = AestheticAssessor::new(Arc::clone(&*head), Arc::clone(&*encoder))?;
        return Ok(Assessor {
            assessor: Arc::new(assessor),
            _leases: vec![Box::new(head), Box::new(encoder)],
        });
    }
    let lease = manager
        .get_model::<Arc<dyn QualityAssessor>>(reference)
        .await?;
    Ok(Assessor {
        assessor: Arc::clone(&*lease),
        _leases: vec![Box::new(lease)],
    })
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manager = args.catalog.manager()?;
    let runtime = crate::common::runtime()?;
    let progress = crate::progress::Progress::new(args.json);
    let images = args
        .images
        .iter()
        .map(|p| open_image(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let assessor =
        runtime.block_on(progress.loading(&args.model, lease_assessor(&manager, &args.model)))?;
    let scores = runtime.block_on(assessor.assessor.assess(&images))?;
    let scale = assessor.assessor.scale();
    if args.json {
        let rows: Vec<_> = args
            .images
            .iter()
            .zip(&scores)
            .map(|(path, s)| json!({ "image": path.display().to_string(), "score": s.score }))
            .collect();
        print_json(&json!({
            "model": assessor.assessor.model(),
            "scale": scale,
            "scores": rows,
        }));
    } else {
        println!("{} ({})", assessor.assessor.model(), scale_text(&scale));
        for (path, s) in args.images.iter().zip(&scores) {
            println!("  {}: {:.3}", path.display(), s.score);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The scale in words: its meaning, range and direction.
pub(crate) fn scale_text(scale: &ScoreScale) -> String {
    let range = match (scale.min, scale.max) {
        (Some(lo), Some(hi)) => format!(", {lo} to {hi}"),
        _ => String::new(),
    };
    let direction = if scale.higher_is_better {
        "higher is better"
    } else {
        "lower is better"
    };
    if scale.meaning.contains(direction) {
        format!("{}{range}", scale.meaning)
    } else {
        format!("{}{range}, {direction}", scale.meaning)
    }
}
