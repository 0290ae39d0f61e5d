//! `modelmux doctor`: what this machine can run — ONNX Runtime, execution providers, GPUs, RAM.

use std::process::ExitCode;

use modelmux_runtime_ort::{ProviderProbe, Runtime};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    onnxruntime: RuntimeReport,
    devices: modelmux_resources::Survey,
}

#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum RuntimeReport {
    Loaded {
        library: String,
        found_in: String,
        version: String,
        max_ir_version: i64,
        max_opset: i64,
        providers_compiled: Vec<String>,
        providers: Vec<ProviderProbe>,
    },
    Unavailable {
        error: String,
    },
}

/// Exit 0 when ONNX Runtime loads, 1 when it does not.
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let report = Report {
        onnxruntime: runtime_report(),
        devices: modelmux_resources::survey(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(match report.onnxruntime {
        RuntimeReport::Loaded { .. } => ExitCode::SUCCESS,
        RuntimeReport::Unavailable { .. } => ExitCode::from(1),
    })
}

fn runtime_report() -> RuntimeReport {
    let runtime = match Runtime::global() {
        Ok(runtime) => runtime,
        Err(e) => {
            return RuntimeReport::Unavailable {
                error: e.to_string(),
            };
        }
    };
    let limits = runtime.onnx_limits();
    RuntimeReport::Loaded {
        library: runtime.library_path().display().to_string(),
        found_in: runtime.library_source().to_string(),
        version: runtime.version().to_owned(),
        max_ir_version: limits.max_ir_version,
        max_opset: limits.max_opset,
        providers_compiled: runtime.available_providers(),
        // Registering on a throw-away session is what proves a provider usable here: being
        // compiled in says nothing about the CUDA libraries or a GPU being present.
        providers: runtime.probe_accelerators(),
    }
}

fn print_text(report: &Report) {
    match &report.onnxruntime {
        RuntimeReport::Loaded {
            library,
            found_in,
            version,
            max_ir_version,
            max_opset,
            providers_compiled,
            providers,
        } => {
            println!("onnxruntime: {version} from {library} ({found_in})");
            println!(
                "  models accepted: IR version ≤ {max_ir_version}, ai.onnx opset ≤ {max_opset}"
            );
            println!("  providers compiled in: {}", providers_compiled.join(", "));
            for probe in providers {
                match &probe.error {
                    None => println!("  {}: registers", probe.provider),
                    Some(error) => println!("  {}: does not register: {error}", probe.provider),
                }
            }
        }
        RuntimeReport::Unavailable { error } => {
            println!("onnxruntime: not loaded\n  {}", error.replace('\n', "\n  "))
        }
    }
    print!("{}", report.devices);
}
