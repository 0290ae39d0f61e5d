//! The `modelmux` command-line tool: inspect the machine, the catalog and the models.

mod common;
mod doctor;
mod embed;
mod generate;
mod models;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Use many ML models through one model manager, on scarce GPU memory.
#[derive(Debug, Parser)]
#[command(name = "modelmux", version, about)]
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
    /// Embed texts with a text encoder.
    Embed(embed::Args),
    /// Generate text with a language model.
    Generate(generate::Args),
    /// Show the devices, their memory ledgers and every model's state.
    Status(status::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Doctor(args) => doctor::run(&args),
        Command::Models(command) => models::run(&command),
        Command::Status(args) => status::run(&args),
        Command::Embed(args) => embed::run(&args),
        Command::Generate(args) => generate::run(&args),
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
