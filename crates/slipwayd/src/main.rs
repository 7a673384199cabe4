//! `slipwayd`, the Slipway server: parse the command line, set up logging, run.

mod config;
mod http;
mod rebase;
mod server;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use crate::config::{Cli, Command};

fn main() -> ExitCode {
    // ring is the only rustls provider Slipway uses; install it before anything makes a
    // TLS connection (sqlx to PostgreSQL, later kube and the registry client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // Hooks run inside `git receive-pack`: their stderr is the pusher's terminal, so they
    // log nothing and need no async runtime.
    if let Command::Hook { name } = &cli.command {
        return ExitCode::from(gateway::hook::client_main(name));
    }
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => server::serve(server::Role::Up, (*args).resolve()?).await,
            Command::Api(args) => server::serve(server::Role::Api, (*args).resolve()?).await,
            Command::Gateway(args) => {
                server::serve(server::Role::Gateway, (*args).resolve()?).await
            }
            Command::Releaser(args) => {
                server::serve(server::Role::Releaser, (*args).resolve()?).await
            }
            Command::Migrate(args) => server::migrate(args.resolve()?).await,
            Command::Ca(args) => server::print_ca(args.resolve()?).await,
            Command::RunImage(args) => server::run_image(args).await,
            Command::Rebase(args) => rebase::rebase(*args).await,
            Command::Hook { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
