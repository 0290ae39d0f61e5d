//! `modelmux serve`: the model server (Open Inference Protocol v2 over HTTP and gRPC, Triton's
//! repository, statistics and model-configuration extensions, OpenAI-compatible routes) over the
//! catalog's models.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use modelmux::resources::DeviceRequest;
use modelmux::{ManagerOptions, ModelManager};
use modelmux_server::{ControlMode, ServeLoader, Server, ServerOptions, Tokens};

use crate::common::CatalogArgs;

/// The environment variable holding accepted bearer tokens (one per line) when no
/// `--token-file` is given.
const TOKEN_ENV: &str = "MODELMUX_SERVE_TOKENS";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Control {
    /// modelmux loads models on first use and evicts idle ones under its swap policy.
    Policy,
    /// Models load and unload only through the repository extension and are never evicted
    /// (for KServe, Seldon Core 2 or ModelMesh).
    External,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The address to listen on; 127.0.0.1 unless told otherwise (0.0.0.0 in a container).
    #[arg(long, value_name = "HOST", default_value = "127.0.0.1")]
    host: String,
    /// The HTTP port (0 picks a free one; the address is printed on stdout).
    #[arg(long, value_name = "PORT", default_value_t = 8080)]
    http_port: u16,
    /// The gRPC port (inference.GRPCInferenceService, on the same host; 0 picks a free one).
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 8081,
        conflicts_with = "no_grpc"
    )]
    grpc_port: u16,
    /// Serve HTTP only, without the gRPC service.
    #[arg(long)]
    no_grpc: bool,
    /// Accepted bearer tokens, one per line [default: $MODELMUX_SERVE_TOKENS, else none].
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Who decides which models are loaded.
    #[arg(long, value_enum, default_value = "policy")]
    control: Control,
    /// Models to load before serving (ids or id@version; repeatable).
    #[arg(long = "load-model", value_name = "ID")]
    load_models: Vec<String>,
    /// The largest request body, in bytes (larger is answered 413).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Requests handled at once (more is answered 429 on /v1, 503 on /v2, with Retry-After).
    #[arg(long, value_name = "N", default_value_t = 256)]
    max_concurrency: usize,
    /// Seconds shutdown waits for in-flight requests' models.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    shutdown_grace: u64,
    #[command(flatten)]
    catalog: CatalogArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let tokens = match &args.token_file {
        Some(path) => Tokens::from_file(path)?,
        None => match std::env::var(TOKEN_ENV) {
            Ok(text) => Tokens::new(text.lines().map(str::trim)),
            Err(_) => Tokens::none(),
        },
    };
    let options = ServerOptions {
        control: match args.control {
            Control::Policy => ControlMode::Policy,
            Control::External => ControlMode::External,
        },
        tokens,
        max_body_bytes: args.max_body_bytes,
        max_concurrency: args.max_concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
        ..ServerOptions::default()
    };
    let server = Server::new(manager(&args.catalog)?, options);
    let runtime = crate::common::runtime()?;
    runtime.block_on(async {
        for model in &args.load_models {
            server
                .load(model)
                .await
                .map_err(|e| anyhow::format_err!("--load-model {model}: {}", e.message))?;
        }
        let http = modelmux_server::bind(&args.host, args.http_port).await?;
        let address = http.local_addr().context("the bound address")?;
        // One line on stdout per listener, so scripts (and tests) that asked for port 0 learn
        // the ports.
        println!("modelmux serve: listening on http://{address}");
        if args.no_grpc {
            server
                .serve(http, modelmux_server::shutdown_signal())
                .await?;
        } else {
            let grpc = modelmux_server::bind(&args.host, args.grpc_port).await?;
            let address = grpc.local_addr().context("the bound gRPC address")?;
            println!("modelmux serve: listening on grpc://{address}");
            server
                .serve_with_grpc(http, grpc, modelmux_server::shutdown_signal())
                .await?;
        }
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A manager like every command's, loading with the server's loader so models without a typed
/// interface are served tensor for tensor.
fn manager(args: &CatalogArgs) -> anyhow::Result<ModelManager> {
    let catalog = args.catalog()?;
    let mut options = ManagerOptions::local();
    options.exports_dir = args.exports.clone();
    options.default_device = args
        .device
        .parse::<DeviceRequest>()
        .with_context(|| format!("--device {}", args.device))?;
    options.loader = Arc::new(ServeLoader);
    Ok(ModelManager::new(catalog, options))
}
