//! `slip`, the Slipway CLI: parses the command line, runs the command, and turns any
//! failure into one `error: ...` line on stderr and exit status 1 (`slip run` exits with
//! its command's status instead).

mod cli;
mod client;
mod commands;
mod credentials;
mod dotenv;
mod git;
mod output;

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "error: slip failed unexpectedly: {}",
            one_line(&panic_message(info))
        );
    }));
    let cli = cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`slip releases | head -1`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        // `slip run`: the command's own exit status; its output said the rest.
        Err(e) if e.downcast_ref::<commands::ExitStatus>().is_some() => {
            ExitCode::from(e.downcast_ref::<commands::ExitStatus>().map_or(1, |s| s.0))
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn panic_message(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic");
    match info.location() {
        Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
        None => message.to_owned(),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
