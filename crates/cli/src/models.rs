//! `modelmux models …`: list the catalog and check it against the exports and the runtime.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List the catalog's models.
    List,
}

pub(crate) fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List => anyhow::bail!("the catalog commands are not built yet"),
    }
}
