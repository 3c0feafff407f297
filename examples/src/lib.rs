//! Runnable programs of the `integrations` crate family, and the library behind the main one:
//! [`order_flow`], the seed's order workflow end to end
//! (`cargo run -p integrations-examples --bin order_flow`).
//!
//! | binary | what |
//! |---|---|
//! | `order_flow` | checkout → signed webhooks → durable outbox fan-out to email, analytics, notifications and metrics, on in-process sandboxes (or the real services with credentials); a report whose invariants set the exit code |
//! | `policy_demo` | the resilience policy, breaker and failover on scripted stub providers |
//! | `service_load` | the reference service (`integrations-order-service`) under load from concurrent clients: time per order and the server's memory per tenth of the orders, into the same scaling CSV and chart |
#![warn(missing_docs)]

pub mod order_flow;
pub mod service_load;
