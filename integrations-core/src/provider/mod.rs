//! Provider traits and their plain request/response types. No provider-specific type leaks here.

pub mod email;
pub mod notify;
pub mod payment;
pub mod sheets;

pub use email::{
    Attachment, EmailBody, EmailCapabilities, EmailMessage, EmailMessageBuilder, EmailProvider,
    Mailbox, Personalization, SentEmail,
};
pub use notify::{Notification, Notifier, Published};
pub use payment::{
    CancelReason, CaptureMethod, CreatePayment, Payment, PaymentCapabilities, PaymentFailure,
    PaymentProvider, PaymentStatus, Refund, RefundReason, RefundRequest, RefundStatus,
};
pub use sheets::{AppendOutcome, Cell, Row, SheetsSink, UpdateOutcome};

#[cfg(test)]
mod tests {
    use super::*;

    // The traits must stay object safe: callers hold `Arc<dyn EmailProvider>`.
    #[test]
    fn traits_are_object_safe() {
        fn _p(_: &dyn PaymentProvider) {}
        fn _e(_: &dyn EmailProvider) {}
        fn _s(_: &dyn SheetsSink) {}
        fn _n(_: &dyn Notifier) {}
    }
}
