//! `modelmux status`: the devices, their budgets and ledgers, and every catalog model's state.

use std::process::ExitCode;

use crate::common::{CatalogArgs, human_bytes};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let manager = args.catalog.manager()?;
    let status = manager.status();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("devices:");
    for d in &status.devices {
        println!(
            "  {} ({}): budget {}, ours {} (runtime overhead {}), reserved {}, other processes {}, unreclaimed {}, available {}",
            d.device,
            d.name,
            human_bytes(d.budget_bytes),
            human_bytes(d.used_by_us_bytes),
            human_bytes(d.runtime_overhead_bytes),
            human_bytes(d.reserved_bytes),
            human_bytes(d.other_processes_bytes),
            human_bytes(d.unreclaimed_bytes),
            human_bytes(d.available_bytes),
        );
    }
    println!("models:");
    for m in &status.models {
        let placed = match (&m.device, m.bytes) {
            (Some(device), Some(bytes)) => format!(" on {device}, {}", human_bytes(bytes)),
            _ => String::new(),
        };
        println!(
            "  {:<28} {:<11} {:<9}{placed}{}",
            m.model,
            m.family,
            format!("{:?}", m.state).to_lowercase(),
            if m.pinned { " (pinned)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
