//! The `modelmux` command-line tool: inspect the machine, the catalog and the models, and run
//! every model family through one model manager.

mod assess;
mod caption;
mod classify;
mod common;
mod doctor;
mod embed;
mod generate;
mod models;
mod pipeline;
mod progress;
mod serve;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What `--help` says about exit codes; README's CLI section repeats it.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  a check found problems (doctor: ONNX Runtime does not load; models check/show: an
     incompatible model)
  2  an error: bad arguments, an unknown or unexported model, a model that failed to load or
     run (the message names the cause chain)";

/// Use many ML models through one model manager, on scarce GPU memory.
#[derive(Debug, Parser)]
#[command(name = "modelmux", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that ONNX Runtime loads, which execution providers work, and which devices exist.
    Doctor(doctor::Args),
    /// Inspect and check the model catalog.
    #[command(subcommand)]
    Models(models::Command),
    /// Embed texts with a text encoder, or texts or images with a vision-language model.
    Embed(embed::Args),
    /// Generate text with a language model, or images with a diffusion model.
    Generate(generate::Args),
    /// Caption images with an image captioner.
    Caption(caption::Args),
    /// Score image attributes with a classifier, or zero-shot with a dual encoder.
    Classify(classify::Args),
    /// Score image quality with a quality assessor or an aesthetic head.
    Assess(assess::Args),
    /// Generate images, evaluate them and have a language model assess them, through one
    /// model manager (swapping models under --memory-budget).
    Pipeline(pipeline::Args),
    /// Serve the catalog's models over the Open Inference Protocol v2 (KServe, Triton clients)
    /// and OpenAI-compatible routes.
    Serve(serve::Args),
    /// Show the devices, their memory ledgers and every model's state.
    Status(status::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Models(command) => models::run(&command),
        Command::Status(args) => status::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Embed(args) => embed::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Caption(args) => caption::run(&args),
        Command::Classify(args) => classify::run(&args),
        Command::Assess(args) => assess::run(&args),
        Command::Pipeline(args) => pipeline::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
