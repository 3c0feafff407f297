//! The order domain of the examples: what the example shop sells and sends, kept out of the
//! provider crates (which describe providers only).
//!
//! | item | what |
//! |---|---|
//! | [`Order`], [`OrderStatus`], [`LineItem`] | the order model; every amount a core [`Money`](integrations_core::Money) |
//! | [`emails`] | the shop's five transactional emails, on SendGrid's generic template engine |
//! | [`DynamoOrderStore`] | the DynamoDB order table, on the public DynamoDB client of `integrations-aws` |
//! | [`jobs`] | the job kinds a payment event fans out to, and their payload |
//!
//! The example's `order_flow`, `integrations-order-service` and the benches use these instead of
//! their own copies.

pub mod dynamo;
pub mod emails;
pub mod jobs;
pub mod order;

pub use dynamo::DynamoOrderStore;
pub use emails::{OrderEmail, OrderTemplate, order_templates};
pub use order::{LineItem, Order, OrderPage, OrderStatus, total_of};
