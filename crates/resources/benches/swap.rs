//! The swap-policy simulation: replays seeded traces through modelmux's `EvictionPolicy`,
//! plain LRU and Belady's offline optimum, and prints hit ratio and bytes reloaded.
//!
//! `cargo bench -p modelmux-resources --bench swap` prints a table;
//! `cargo bench -p modelmux-resources --bench swap -- --json` prints one JSON object.

use modelmux_resources::sim::{
    GB, SimSettings, TraceComparison, compare, missed_targets, standard_traces,
};

/// The seed and length of the traces; fixed so that every run prints the same numbers.
const SEED: u64 = 2026;
const REQUESTS: usize = 20_000;

#[derive(serde::Serialize)]
struct Report {
    traces: Vec<TraceComparison>,
}

fn main() {
    // Cargo passes `--bench` to harness-less benchmarks; only `--json` matters here.
    let json = std::env::args().any(|arg| arg == "--json");
    let settings = SimSettings::default();
    let traces: Vec<TraceComparison> = match standard_traces(SEED, REQUESTS)
        .iter()
        .map(|trace| compare(trace, &settings))
        .collect()
    {
        Ok(traces) => traces,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    let missed: Vec<String> = traces.iter().flat_map(missed_targets).collect();
    if json {
        match serde_json::to_string(&Report { traces }) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("cannot serialise the report: {error}");
                std::process::exit(1);
            }
        }
    } else {
        println!(
            "swap simulation: 20 models of 0.2-8 GB, 24 GB device, {REQUESTS} requests per trace, seed {SEED}"
        );
        println!(
            "{:<7} {:<9} {:>10} {:>14}",
            "trace", "policy", "hit ratio", "GB reloaded"
        );
        for trace in &traces {
            for (policy, outcome) in [
                ("modelmux", trace.modelmux),
                ("lru", trace.lru),
                ("belady", trace.belady),
            ] {
                println!(
                    "{:<7} {:<9} {:>10.4} {:>14.1}",
                    trace.name,
                    policy,
                    outcome.hit_ratio,
                    outcome.bytes_reloaded as f64 / GB as f64
                );
            }
        }
        if missed.is_empty() {
            println!("targets: all met");
        } else {
            for line in &missed {
                println!("target missed: {line}");
            }
        }
    }
}
