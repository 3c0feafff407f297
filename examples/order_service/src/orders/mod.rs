//! Orders: the model and the store, in SQLite (embedded default) or Postgres.

mod group;
mod model;
pub mod postgres;
mod row;
mod sqlite;
mod store;
#[cfg(test)]
mod store_tests;

pub use model::{LineItem, NewOrder, Order, OrderStatus, ShippingAddress, rfc3339};
pub use store::{
    ClientKey, Inserted, OrderStore, Page, PaymentApplied, RefundIntent, RefundStart, check_refund,
    new_order_id,
};
