//! The state machine behind [`StubPaymentProvider`](super::StubPaymentProvider).

use std::collections::{BTreeMap, HashMap, HashSet};

use integrations_core::provider::payment::check_refund;
use integrations_core::provider::{
    CancelReason, CaptureMethod, CreatePayment, Payment, PaymentCapabilities, PaymentFailure,
    PaymentStatus, Refund, RefundRequest, RefundStatus,
};
use integrations_core::{Error, IdempotencyKey, Money, Result};

/// What confirming with a payment method does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MethodOutcome {
    Succeed,
    Decline {
        code: String,
        decline_code: Option<String>,
    },
}

/// A mutating operation; its `Debug` text is the idempotency fingerprint.
#[derive(Debug)]
pub(crate) enum Op<'a> {
    Create(&'a CreatePayment),
    Confirm {
        id: &'a str,
        payment_method: Option<&'a str>,
    },
    Capture {
        id: &'a str,
        amount: Option<Money>,
    },
    Cancel {
        id: &'a str,
        reason: Option<CancelReason>,
    },
    Refund(&'a RefundRequest),
}

/// A successful answer.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Payment(Payment),
    Refund(Refund),
}

impl Outcome {
    pub(crate) fn into_payment(self) -> Result<Payment> {
        match self {
            Outcome::Payment(p) => Ok(p),
            Outcome::Refund(r) => Err(Error::provider(format!(
                "idempotent replay returned refund {} where a payment was expected",
                r.id
            ))),
        }
    }

    pub(crate) fn into_refund(self) -> Result<Refund> {
        match self {
            Outcome::Refund(r) => Ok(r),
            Outcome::Payment(p) => Err(Error::provider(format!(
                "idempotent replay returned payment {} where a refund was expected",
                p.id
            ))),
        }
    }
}

/// A recorded answer: replayed for the same key and parameters.
#[derive(Debug, Clone)]
enum Recorded {
    Ok(Outcome),
    Declined {
        code: Option<String>,
        decline_code: Option<String>,
        message: String,
    },
}

impl Recorded {
    fn replay(&self) -> Result<Outcome> {
        match self {
            Recorded::Ok(o) => Ok(o.clone()),
            Recorded::Declined {
                code,
                decline_code,
                message,
            } => Err(declined(
                code.clone(),
                decline_code.clone(),
                message.clone(),
            )),
        }
    }
}

fn declined(code: Option<String>, decline_code: Option<String>, message: String) -> Error {
    let e = Error::declined(code.clone(), decline_code, message).with_status(402);
    match code {
        Some(c) => e.with_code(c),
        None => e,
    }
}

fn unexpected_state(p: &Payment, action: &str) -> Error {
    Error::conflict(format!(
        "cannot {action} payment `{}` in status {:?}",
        p.id, p.status
    ))
    .with_code("payment_intent_unexpected_state")
    .with_status(400)
}

fn money_error(e: integrations_core::MoneyError) -> Error {
    Error::provider(format!("amount arithmetic failed: {e}"))
}

/// Payments, refunds and recorded idempotency keys.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) payments: BTreeMap<String, Payment>,
    pub(crate) refunds: Vec<Refund>,
    keys: HashMap<String, (String, Recorded)>,
    /// Ids of payments created with manual capture (`Payment` does not carry its capture method).
    manual: HashSet<String>,
    /// Why payments were canceled (`Payment` does not carry it either).
    pub(crate) cancellation_reasons: HashMap<String, CancelReason>,
    created: u64,
}

impl State {
    pub(crate) fn payment(&self, id: &str) -> Result<&Payment> {
        self.payments.get(id).ok_or_else(|| {
            Error::not_found(format!("no such payment: `{id}`"))
                .with_code("resource_missing")
                .with_status(404)
        })
    }

    fn payment_mut(&mut self, id: &str) -> Result<&mut Payment> {
        self.payment(id)?;
        self.payments
            .get_mut(id)
            .ok_or_else(|| Error::not_found(format!("no such payment: `{id}`")))
    }

    /// Runs `op` under `key`: replays a recorded answer, refuses a reused key, records the new
    /// answer unless it is a validation or state error.
    pub(crate) fn run(
        &mut self,
        key: &IdempotencyKey,
        op: Op<'_>,
        caps: &PaymentCapabilities,
        methods: &HashMap<String, MethodOutcome>,
        now: i64,
    ) -> Result<Outcome> {
        let fingerprint = format!("{op:?}");
        if let Some((recorded_fp, recorded)) = self.keys.get(key.as_str()) {
            if *recorded_fp != fingerprint {
                return Err(Error::conflict(format!(
                    "idempotency key `{}` was already used with different parameters",
                    key.as_str()
                ))
                .with_code("idempotency_error")
                .with_status(400));
            }
            return recorded.replay();
        }
        let result = match op {
            Op::Create(req) => self.create(req, caps, methods, now).map(Outcome::Payment),
            Op::Confirm { id, payment_method } => self
                .confirm(id, payment_method, methods)
                .map(Outcome::Payment),
            Op::Capture { id, amount } => self.capture(id, amount, caps).map(Outcome::Payment),
            Op::Cancel { id, reason } => self.cancel(id, reason).map(Outcome::Payment),
            Op::Refund(req) => self.refund(req, key, caps).map(Outcome::Refund),
        };
        let recorded = match &result {
            Ok(o) => Some(Recorded::Ok(o.clone())),
            Err(
                e @ Error::Declined {
                    code, decline_code, ..
                },
            ) => Some(Recorded::Declined {
                code: code.clone(),
                decline_code: decline_code.clone(),
                message: e.message().to_owned(),
            }),
            Err(_) => None,
        };
        if let Some(r) = recorded {
            self.keys.insert(key.as_str().to_owned(), (fingerprint, r));
        }
        result
    }

    fn check_method<'m>(
        methods: &'m HashMap<String, MethodOutcome>,
        id: &str,
    ) -> Result<&'m MethodOutcome> {
        methods.get(id).ok_or_else(|| {
            Error::invalid_input("payment_method", format!("no such payment method: `{id}`"))
                .with_code("resource_missing")
                .with_status(400)
        })
    }

    fn create(
        &mut self,
        req: &CreatePayment,
        caps: &PaymentCapabilities,
        methods: &HashMap<String, MethodOutcome>,
        now: i64,
    ) -> Result<Payment> {
        req.validate()?;
        if req.capture_method == CaptureMethod::Manual && !caps.manual_capture {
            return Err(Error::invalid_input(
                "capture_method",
                "manual capture is not supported",
            ));
        }
        if let Some(pm) = &req.payment_method {
            Self::check_method(methods, pm)?;
        } else if req.confirm {
            return Err(Error::invalid_input(
                "payment_method",
                "confirming requires a payment method",
            ));
        }
        self.created += 1;
        let id = format!("pi_stub_{:06}", self.created);
        let status = if req.payment_method.is_some() {
            PaymentStatus::RequiresConfirmation
        } else {
            PaymentStatus::RequiresPaymentMethod
        };
        let mut p = Payment::new(id.clone(), req.amount, status);
        p.client_secret = Some(format!("{id}_secret_stub"));
        p.customer = req.customer.clone();
        p.payment_method = req.payment_method.clone();
        p.metadata = req.metadata.clone();
        p.created = now;
        self.payments.insert(id.clone(), p);
        if req.capture_method == CaptureMethod::Manual {
            self.manual.insert(id.clone());
        }
        if req.confirm {
            return self.confirm(&id, None, methods);
        }
        Ok(self.payment(&id)?.clone())
    }

    fn confirm(
        &mut self,
        id: &str,
        payment_method: Option<&str>,
        methods: &HashMap<String, MethodOutcome>,
    ) -> Result<Payment> {
        let manual = self.manual.contains(id);
        let p = self.payment_mut(id)?;
        if !matches!(
            p.status,
            PaymentStatus::RequiresPaymentMethod
                | PaymentStatus::RequiresConfirmation
                | PaymentStatus::RequiresAction
        ) {
            return Err(unexpected_state(p, "confirm"));
        }
        let Some(method) = payment_method
            .map(str::to_owned)
            .or_else(|| p.payment_method.clone())
        else {
            return Err(Error::invalid_input(
                "payment_method",
                "confirming requires a payment method",
            ));
        };
        match Self::check_method(methods, &method)? {
            MethodOutcome::Succeed => {
                p.payment_method = Some(method);
                p.last_failure = None;
                if manual {
                    p.status = PaymentStatus::RequiresCapture;
                } else {
                    p.status = PaymentStatus::Succeeded;
                    p.amount_received = p.amount;
                }
                Ok(p.clone())
            }
            MethodOutcome::Decline { code, decline_code } => {
                let message = "Your card was declined.".to_owned();
                p.status = PaymentStatus::RequiresPaymentMethod;
                p.payment_method = None;
                p.last_failure = Some(PaymentFailure {
                    code: Some(code.clone()),
                    decline_code: decline_code.clone(),
                    message: Some(message.clone()),
                });
                Err(declined(Some(code.clone()), decline_code.clone(), message))
            }
        }
    }

    fn capture(
        &mut self,
        id: &str,
        amount: Option<Money>,
        caps: &PaymentCapabilities,
    ) -> Result<Payment> {
        let p = self.payment_mut(id)?;
        if p.status != PaymentStatus::RequiresCapture {
            return Err(unexpected_state(p, "capture"));
        }
        let amount = amount.unwrap_or(p.amount);
        if amount.currency() != p.amount.currency() {
            return Err(Error::invalid_input(
                "amount",
                format!(
                    "capture in {} of a payment in {}",
                    amount.currency(),
                    p.amount.currency()
                ),
            ));
        }
        if !amount.is_positive() || amount.minor() > p.amount.minor() {
            return Err(Error::invalid_input(
                "amount",
                format!(
                    "capture of {amount} must be positive and at most {}",
                    p.amount
                ),
            )
            .with_code("amount_too_large"));
        }
        if amount != p.amount && !caps.partial_capture {
            return Err(Error::invalid_input(
                "amount",
                "partial capture is not supported",
            ));
        }
        p.amount_received = amount;
        p.status = PaymentStatus::Succeeded;
        Ok(p.clone())
    }

    fn cancel(&mut self, id: &str, reason: Option<CancelReason>) -> Result<Payment> {
        let p = self.payment_mut(id)?;
        if !matches!(
            p.status,
            PaymentStatus::RequiresPaymentMethod
                | PaymentStatus::RequiresConfirmation
                | PaymentStatus::RequiresAction
                | PaymentStatus::RequiresCapture
        ) {
            return Err(unexpected_state(p, "cancel"));
        }
        p.status = PaymentStatus::Canceled;
        let canceled = p.clone();
        if let Some(reason) = reason {
            self.cancellation_reasons.insert(id.to_owned(), reason);
        }
        Ok(canceled)
    }

    fn refund(
        &mut self,
        req: &RefundRequest,
        key: &IdempotencyKey,
        caps: &PaymentCapabilities,
    ) -> Result<Refund> {
        let refund_no = self.refunds.len() + 1;
        let p = self.payment_mut(&req.payment_id)?;
        if p.status != PaymentStatus::Succeeded {
            return Err(unexpected_state(p, "refund"));
        }
        let amount = check_refund(p, req.amount)?;
        let is_partial = amount != p.amount_received || p.amount_refunded.is_positive();
        if is_partial && !caps.partial_refunds {
            return Err(Error::invalid_input(
                "amount",
                "partial refunds are not supported; refund the whole payment",
            ));
        }
        p.amount_refunded = p.amount_refunded.checked_add(amount).map_err(money_error)?;
        let mut refund = Refund::new(
            format!("re_stub_{refund_no:06}"),
            p.id.clone(),
            amount,
            RefundStatus::Succeeded,
        );
        refund.reason = req.reason;
        refund.metadata = req.metadata.clone();
        refund.idempotency_key = Some(key.as_str().to_owned());
        self.refunds.push(refund.clone());
        Ok(refund)
    }
}
