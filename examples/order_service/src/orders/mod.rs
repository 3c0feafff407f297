//! Orders: the model and the SQLite store.

mod model;
mod row;
mod store;
#[cfg(test)]
mod store_tests;

pub use model::{LineItem, NewOrder, Order, OrderStatus, ShippingAddress, rfc3339};
pub use store::{
    ClientKey, Inserted, OrderStore, Page, RefundIntent, RefundStart, check_refund, new_order_id,
};
