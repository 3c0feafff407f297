//! `/v1/customers` (create, retrieve), `/v1/charges/{id}` and `/v1/events` (retrieve, list).

use std::collections::BTreeMap;

use futures_util::stream::BoxStream;
use integrations_core::{IdempotencyKey, Result};
use serde::Serialize;

use super::ListParams;
use crate::client::{StripeClient, path_id};
use crate::form;
use crate::types::{Charge, Customer, Event, List};

/// Parameters of `POST /v1/customers`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CreateCustomer {
    /// Email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Full name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl CreateCustomer {
    /// A customer with no fields set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the email.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
    /// Sets the name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the description.
    #[must_use]
    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = Some(d.into());
        self
    }
    /// Sets the phone.
    #[must_use]
    pub fn phone(mut self, p: impl Into<String>) -> Self {
        self.phone = Some(p.into());
        self
    }
    /// Adds a metadata entry.
    #[must_use]
    pub fn metadata(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.metadata.insert(k.into(), v.into());
        self
    }
}

/// Parameters of `GET /v1/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ListEvents {
    /// Only events of this type (`payment_intent.succeeded`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Page size, 1–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u8>,
    /// Cursor: start after this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_after: Option<String>,
}

impl ListEvents {
    /// Events of one type.
    pub fn of_type(t: impl Into<String>) -> Self {
        ListEvents {
            type_: Some(t.into()),
            ..Self::default()
        }
    }
}

impl ListParams for ListEvents {
    fn set_starting_after(&mut self, cursor: Option<String>) {
        self.starting_after = cursor;
    }
}

impl StripeClient {
    /// `POST /v1/customers`.
    ///
    /// # Errors
    /// As [`crate::client::parse_error`].
    pub async fn create_customer(
        &self,
        params: &CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<Customer> {
        let body = form::encode(params)?;
        self.post("create_customer", "/v1/customers", body, key)
            .await
    }

    /// `GET /v1/customers/{id}` (a deleted customer has `deleted: true`).
    ///
    /// # Errors
    /// [`integrations_core::Error::InvalidInput`] naming `id` if it is not a Stripe id;
    /// [`integrations_core::Error::NotFound`]; as [`crate::client::parse_error`].
    pub async fn retrieve_customer(&self, id: &str) -> Result<Customer> {
        let path = format!("/v1/customers/{}", path_id("id", id)?);
        self.get("retrieve_customer", &path, "").await
    }

    /// `GET /v1/charges/{id}`.
    ///
    /// # Errors
    /// As [`retrieve_customer`](Self::retrieve_customer).
    pub async fn retrieve_charge(&self, id: &str) -> Result<Charge> {
        let path = format!("/v1/charges/{}", path_id("id", id)?);
        self.get("retrieve_charge", &path, "").await
    }

    /// `GET /v1/events/{id}`: re-fetches an event, e.g. to act on Stripe's current copy rather
    /// than a webhook's body.
    ///
    /// # Errors
    /// As [`retrieve_customer`](Self::retrieve_customer).
    pub async fn retrieve_event(&self, id: &str) -> Result<Event> {
        let path = format!("/v1/events/{}", path_id("id", id)?);
        self.get("retrieve_event", &path, "").await
    }

    /// `GET /v1/events`: one page.
    ///
    /// # Errors
    /// As [`crate::client::parse_error`].
    pub async fn list_events(&self, params: &ListEvents) -> Result<List<Event>> {
        let query = form::encode(params)?;
        self.get("list_events", "/v1/events", &query).await
    }

    /// Every event matching `params`, across pages.
    pub fn events_stream(&self, params: ListEvents) -> BoxStream<'static, Result<Event>> {
        self.paginate("list_events", "/v1/events", params)
    }
}
