//! The seed's order workflow end to end, on sandboxes with no set-up, or on the real services
//! when their credentials are set; prints a report and exits non-zero if an invariant failed.
//!
//! `cargo run -p integrations-examples --bin order_flow -- --orders 200` (`--help` for the rest).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use integrations_examples::order_flow::progress::LogWriter;
use integrations_examples::order_flow::{self, Command, Environment, Flow, USAGE};

fn main() -> ExitCode {
    let config = match order_flow::parse_args(std::env::args().skip(1), Environment::from_process())
    {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(config)) => *config,
        Ok(Command::Scale(scale)) => {
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => {
                    eprintln!("order_flow: cannot find this program: {e}");
                    return ExitCode::FAILURE;
                }
            };
            return match order_flow::measure::run_scale(&exe, &scale) {
                Ok(table) => {
                    println!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("order_flow: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("order_flow: {e}");
            return ExitCode::from(2);
        }
    };
    // Errors only by default: the injected outage's retries, breaker transitions and failovers are
    // expected and summed up in the report. `RUST_LOG=warn` (or `info`) shows each of them.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(LogWriter::new(config.progress.clone()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("order_flow: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let orders = config.orders;
    let state_dir = config.state_dir.clone();
    let run = async move {
        let flow = Flow::start(config).await?;
        let run = flow.run_state();
        match (&state_dir, run.starts) {
            (Some(dir), 1) => println!(
                "order_flow: {orders} orders through, run {} kept in {}",
                run.run_id,
                dir.display()
            ),
            (Some(dir), n) => println!(
                "order_flow: resuming run {} from {} (start {n})",
                run.run_id,
                dir.display()
            ),
            (None, _) => println!("order_flow: {orders} orders through"),
        }
        for b in flow.backends() {
            println!("  {b}");
        }
        if flow.backends().iter().all(|b| !b.real) {
            println!("  (every service is local; see --help for real ones)");
        }
        println!();
        flow.run().await
    };
    match runtime.block_on(run) {
        Ok(report) => {
            println!("{report}");
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("order_flow: the run could not complete: {e}");
            ExitCode::FAILURE
        }
    }
}
