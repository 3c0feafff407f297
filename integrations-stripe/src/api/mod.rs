//! The operations of [`StripeClient`]: payment intents, refunds, customers, charges, events, and
//! lists that page themselves.
//!
//! Every `POST` takes an [`IdempotencyKey`](integrations_core::IdempotencyKey): derive it from
//! the business operation (`order-42/payment`), never from the clock or a fresh UUID, so a retry
//! — by the policy, or by your process after a crash — is replayed by Stripe, not executed
//! twice.

mod customers;
mod payment_intents;
mod refunds;

use std::collections::VecDeque;

use futures_util::stream::{self, BoxStream, StreamExt};
use integrations_core::Result;
use serde::Serialize;

pub use customers::{CreateCustomer, ListEvents};
pub use payment_intents::{
    CancelPaymentIntent, CapturePaymentIntent, ConfirmPaymentIntent, CreatePaymentIntent,
    ListPaymentIntents,
};
pub use refunds::{CreateRefund, ListRefunds};

use crate::client::StripeClient;
use crate::form;
use crate::types::{List, StripeObject};

/// Largest page Stripe serves.
pub const MAX_PAGE_SIZE: u8 = 100;

/// Parameters of a list endpoint: a form-encodable value whose `starting_after` cursor the
/// paginator moves.
pub trait ListParams: Serialize + Clone + Send + Sync + 'static {
    /// Sets the cursor (`starting_after`): the last id of the previous page.
    fn set_starting_after(&mut self, cursor: Option<String>);
}

impl StripeClient {
    /// Every object of a list endpoint, page after page (`starting_after` the last id of each
    /// page), as a stream that fetches the next page only when the current one is consumed.
    ///
    /// The stream ends after the last page, or after yielding the first error. Use
    /// [`StreamExt::take`] to bound it.
    pub fn paginate<T, P>(
        &self,
        operation: &'static str,
        path: &str,
        params: P,
    ) -> BoxStream<'static, Result<T>>
    where
        T: StripeObject,
        P: ListParams,
    {
        struct State<T, P> {
            client: StripeClient,
            operation: &'static str,
            path: String,
            params: P,
            buffer: VecDeque<T>,
            done: bool,
        }
        let state = State {
            client: self.clone(),
            operation,
            path: path.to_owned(),
            params,
            buffer: VecDeque::new(),
            done: false,
        };
        stream::unfold(state, |mut s| async move {
            loop {
                if let Some(item) = s.buffer.pop_front() {
                    return Some((Ok(item), s));
                }
                if s.done {
                    return None;
                }
                let page = match form::encode(&s.params) {
                    Ok(query) => s.client.get::<List<T>>(s.operation, &s.path, &query).await,
                    Err(e) => Err(e),
                };
                match page {
                    Ok(page) => {
                        s.done = !page.has_more || page.data.is_empty();
                        s.params
                            .set_starting_after(page.data.last().map(|o| o.id().to_owned()));
                        s.buffer.extend(page.data);
                    }
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
            }
        })
        .boxed()
    }
}
