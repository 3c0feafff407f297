//! The reference service under load: time per order and the server's memory per tenth of the
//! orders (see `integrations_examples::service_load`).
//!
//! ```text
//! cargo build --release -p integrations-order-service -p integrations-examples
//! target/release/service_load --service target/release/integrations-order-service --orders 1000,10000
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use integrations_examples::service_load::{self, USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    let cfg = match service_load::parse_args(std::env::args().skip(1)) {
        Ok(Some(cfg)) => cfg,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("service_load: {e}");
            return ExitCode::from(2);
        }
    };
    match service_load::run(&cfg).await {
        Ok(table) => {
            println!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("service_load: {e}");
            ExitCode::FAILURE
        }
    }
}
