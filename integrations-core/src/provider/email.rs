//! [`EmailProvider`]: send one transactional message.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

use crate::{Error, Result};

/// What an email provider supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EmailCapabilities {
    /// Provider-hosted templates ([`EmailBody::Template`]).
    pub templates: bool,
    /// Attachments.
    pub attachments: bool,
    /// Scheduled sending (`send_at`).
    pub scheduling: bool,
    /// Categories / tags.
    pub categories: bool,
}

impl EmailCapabilities {
    /// Everything supported.
    pub const fn all() -> Self {
        EmailCapabilities {
            templates: true,
            attachments: true,
            scheduling: true,
            categories: true,
        }
    }
}

/// An address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Mailbox {
    /// Address (`jane@example.com`).
    pub email: String,
    /// Display name.
    pub name: Option<String>,
}

impl Mailbox {
    /// An address without a name.
    pub fn new(email: impl Into<String>) -> Self {
        Mailbox {
            email: email.into(),
            name: None,
        }
    }
    /// An address with a display name.
    pub fn named(email: impl Into<String>, name: impl Into<String>) -> Self {
        Mailbox {
            email: email.into(),
            name: Some(name.into()),
        }
    }

    /// A deliberately simple syntactic check (`local@domain.tld`, no spaces, one `@`, none of
    /// `<>,;:"`), and a display name without control characters.
    pub fn is_valid(&self) -> bool {
        is_valid_address(&self.email) && self.name.as_deref().is_none_or(is_valid_display_name)
    }

    /// [`Mailbox::is_valid`] as an error naming the field: `{field}.email` or `{field}.name`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `{field}.email` or `{field}.name`.
    pub fn validate(&self, field: &str) -> Result<()> {
        if !is_valid_address(&self.email) {
            return Err(Error::invalid_input(
                format!("{field}.email"),
                format!("`{}` is not a valid address", self.email.escape_debug()),
            ));
        }
        if let Some(name) = &self.name {
            if !is_valid_display_name(name) {
                return Err(Error::invalid_input(
                    format!("{field}.name"),
                    "a display name must not contain control characters or line breaks",
                ));
            }
        }
        Ok(())
    }
}

/// Characters refused in an address: they delimit addresses and display names in a header
/// (`"Name" <a@b.co>, c@d.co`), so one inside an address could add a recipient or a header.
const ADDRESS_SPECIALS: &[char] = &['<', '>', ',', ';', ':', '"'];

/// A display name goes into a header (`"Name" <addr>`): no control characters (CR, LF, tab,
/// NUL, …) or Unicode line/paragraph separators, at most 256 characters.
pub fn is_valid_display_name(name: &str) -> bool {
    name.chars().count() <= 256
        && !name
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
}

impl From<&str> for Mailbox {
    fn from(s: &str) -> Self {
        Mailbox::new(s)
    }
}

/// Syntactic address check used before sending: one `@`, a non-empty local part, a domain with a
/// dot and no empty labels, no whitespace, control characters or `<>,;:"` (quoted local parts are
/// not accepted: they would reach a provider's header formatting), at most 254 characters.
pub fn is_valid_address(addr: &str) -> bool {
    if addr.len() > 254
        || addr
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ADDRESS_SPECIALS.contains(&c))
    {
        return false;
    }
    let Some((local, domain)) = addr.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty())
}

/// The body: inline content, or a provider template with variables.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EmailBody {
    /// Inline content; at least one of the two.
    Content {
        /// Plain text.
        text: Option<String>,
        /// HTML.
        html: Option<String>,
    },
    /// A provider-hosted template (`d-…` at SendGrid) and its variables.
    Template {
        /// Template id.
        id: String,
        /// Variables (`dynamic_template_data`).
        variables: serde_json::Map<String, serde_json::Value>,
    },
}

/// A file attached to a message.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Raw bytes (providers base64-encode them on the wire).
    pub content: Vec<u8>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("len", &self.content.len())
            .finish()
    }
}

/// One recipient group with its own overrides (SendGrid's personalization).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Personalization {
    /// To.
    pub to: Vec<Mailbox>,
    /// Cc.
    pub cc: Vec<Mailbox>,
    /// Bcc.
    pub bcc: Vec<Mailbox>,
    /// Subject override.
    pub subject: Option<String>,
    /// Template variables override/extension.
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Per-recipient custom args.
    pub custom_args: BTreeMap<String, String>,
}

impl Personalization {
    /// A group sending to `to`.
    pub fn to(to: impl Into<Mailbox>) -> Self {
        Personalization {
            to: vec![to.into()],
            ..Personalization::default()
        }
    }
    /// Adds a recipient.
    #[must_use]
    pub fn add_to(mut self, m: impl Into<Mailbox>) -> Self {
        self.to.push(m.into());
        self
    }
    /// Adds a cc.
    #[must_use]
    pub fn cc(mut self, m: impl Into<Mailbox>) -> Self {
        self.cc.push(m.into());
        self
    }
    /// Adds a bcc.
    #[must_use]
    pub fn bcc(mut self, m: impl Into<Mailbox>) -> Self {
        self.bcc.push(m.into());
        self
    }
    /// Sets a subject for this group.
    #[must_use]
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }
    /// Sets a template variable for this group.
    #[must_use]
    pub fn variable(mut self, k: impl Into<String>, v: impl Into<serde_json::Value>) -> Self {
        self.variables.insert(k.into(), v.into());
        self
    }
}

/// A message. Build with [`EmailMessage::builder`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmailMessage {
    /// Sender.
    pub from: Mailbox,
    /// Reply-to.
    pub reply_to: Option<Mailbox>,
    /// Recipient groups (≥ 1).
    pub personalizations: Vec<Personalization>,
    /// Subject.
    pub subject: Option<String>,
    /// Body.
    pub body: EmailBody,
    /// Categories / tags.
    pub categories: Vec<String>,
    /// Custom arguments echoed back in event webhooks (carry the order id).
    pub custom_args: BTreeMap<String, String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Scheduled send time.
    pub send_at: Option<SystemTime>,
}

impl EmailMessage {
    /// Starts a message from `from`.
    pub fn builder(from: impl Into<Mailbox>) -> EmailMessageBuilder {
        EmailMessageBuilder {
            msg: EmailMessage {
                from: from.into(),
                reply_to: None,
                personalizations: Vec::new(),
                subject: None,
                body: EmailBody::Content {
                    text: None,
                    html: None,
                },
                categories: Vec::new(),
                custom_args: BTreeMap::new(),
                attachments: Vec::new(),
                send_at: None,
            },
        }
    }

    /// All recipients (to, cc, bcc) of every group.
    pub fn recipients(&self) -> impl Iterator<Item = &Mailbox> {
        self.personalizations
            .iter()
            .flat_map(|p| p.to.iter().chain(&p.cc).chain(&p.bcc))
    }

    /// Provider-independent checks: a sender, at least one recipient, valid addresses, a subject
    /// (unless a template supplies it) and content or a template.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the field (`from.email`, `personalizations[1].to[0].email`,
    /// `content`, …).
    pub fn validate(&self) -> Result<()> {
        self.from.validate("from")?;
        if let Some(r) = &self.reply_to {
            r.validate("reply_to")?;
        }
        if self.personalizations.is_empty() {
            return Err(Error::invalid_input(
                "personalizations",
                "at least one recipient is required",
            ));
        }
        for (i, p) in self.personalizations.iter().enumerate() {
            if p.to.is_empty() {
                return Err(Error::invalid_input(
                    format!("personalizations[{i}].to"),
                    "at least one recipient is required",
                ));
            }
            for (list, name) in [(&p.to, "to"), (&p.cc, "cc"), (&p.bcc, "bcc")] {
                for (j, m) in list.iter().enumerate() {
                    m.validate(&format!("personalizations[{i}].{name}[{j}]"))?;
                }
            }
        }
        match &self.body {
            EmailBody::Content { text, html } => {
                let empty = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
                if empty(text) && empty(html) {
                    return Err(Error::invalid_input(
                        "content",
                        "text or html content is required",
                    ));
                }
                let has_subject = self.subject.as_deref().is_some_and(|s| !s.is_empty())
                    || self.personalizations.iter().all(|p| p.subject.is_some());
                if !has_subject {
                    return Err(Error::invalid_input("subject", "a subject is required"));
                }
            }
            EmailBody::Template { id, .. } => {
                if id.is_empty() {
                    return Err(Error::invalid_input("template_id", "must not be empty"));
                }
            }
        }
        for (i, a) in self.attachments.iter().enumerate() {
            if a.filename.is_empty() {
                return Err(Error::invalid_input(
                    format!("attachments[{i}].filename"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

/// Builder for [`EmailMessage`].
#[derive(Debug, Clone)]
pub struct EmailMessageBuilder {
    msg: EmailMessage,
}

impl EmailMessageBuilder {
    /// Adds a recipient in a new group of its own.
    #[must_use]
    pub fn to(mut self, to: impl Into<Mailbox>) -> Self {
        self.msg.personalizations.push(Personalization::to(to));
        self
    }
    /// Adds a recipient group.
    #[must_use]
    pub fn personalization(mut self, p: Personalization) -> Self {
        self.msg.personalizations.push(p);
        self
    }
    /// Adds a cc to the first group.
    #[must_use]
    pub fn cc(mut self, m: impl Into<Mailbox>) -> Self {
        self.first_group().cc.push(m.into());
        self
    }
    /// Adds a bcc to the first group.
    #[must_use]
    pub fn bcc(mut self, m: impl Into<Mailbox>) -> Self {
        self.first_group().bcc.push(m.into());
        self
    }
    fn first_group(&mut self) -> &mut Personalization {
        if self.msg.personalizations.is_empty() {
            self.msg.personalizations.push(Personalization::default());
        }
        &mut self.msg.personalizations[0]
    }
    /// Sets reply-to.
    #[must_use]
    pub fn reply_to(mut self, m: impl Into<Mailbox>) -> Self {
        self.msg.reply_to = Some(m.into());
        self
    }
    /// Sets the subject.
    #[must_use]
    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.msg.subject = Some(s.into());
        self
    }
    /// Sets the plain-text content.
    #[must_use]
    pub fn text(mut self, t: impl Into<String>) -> Self {
        match &mut self.msg.body {
            EmailBody::Content { text, .. } => *text = Some(t.into()),
            body @ EmailBody::Template { .. } => {
                *body = EmailBody::Content {
                    text: Some(t.into()),
                    html: None,
                }
            }
        }
        self
    }
    /// Sets the HTML content.
    #[must_use]
    pub fn html(mut self, h: impl Into<String>) -> Self {
        match &mut self.msg.body {
            EmailBody::Content { html, .. } => *html = Some(h.into()),
            body @ EmailBody::Template { .. } => {
                *body = EmailBody::Content {
                    text: None,
                    html: Some(h.into()),
                }
            }
        }
        self
    }
    /// Uses a provider template.
    #[must_use]
    pub fn template(mut self, id: impl Into<String>) -> Self {
        self.msg.body = EmailBody::Template {
            id: id.into(),
            variables: serde_json::Map::new(),
        };
        self
    }
    /// Sets a template variable (after [`EmailMessageBuilder::template`]).
    #[must_use]
    pub fn variable(mut self, k: impl Into<String>, v: impl Into<serde_json::Value>) -> Self {
        if let EmailBody::Template { variables, .. } = &mut self.msg.body {
            variables.insert(k.into(), v.into());
        }
        self
    }
    /// Adds a category.
    #[must_use]
    pub fn category(mut self, c: impl Into<String>) -> Self {
        self.msg.categories.push(c.into());
        self
    }
    /// Adds a custom argument.
    #[must_use]
    pub fn custom_arg(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.msg.custom_args.insert(k.into(), v.into());
        self
    }
    /// Adds an attachment.
    #[must_use]
    pub fn attachment(
        mut self,
        filename: impl Into<String>,
        content_type: impl Into<String>,
        content: impl Into<Vec<u8>>,
    ) -> Self {
        self.msg.attachments.push(Attachment {
            filename: filename.into(),
            content_type: content_type.into(),
            content: content.into(),
        });
        self
    }
    /// Schedules the message.
    #[must_use]
    pub fn send_at(mut self, at: SystemTime) -> Self {
        self.msg.send_at = Some(at);
        self
    }
    /// Finishes without validation (providers validate before sending).
    pub fn build(self) -> EmailMessage {
        self.msg
    }
}

/// What a provider returns for an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SentEmail {
    /// Which provider accepted it.
    pub provider: String,
    /// The provider's message id (`X-Message-Id` at SendGrid).
    pub message_id: String,
}

impl SentEmail {
    /// A receipt.
    pub fn new(provider: impl Into<String>, message_id: impl Into<String>) -> Self {
        SentEmail {
            provider: provider.into(),
            message_id: message_id.into(),
        }
    }
}

/// An email provider (SendGrid, Amazon SES, a test double, your own).
///
/// Email has no idempotency key at most providers: a send retried after the provider accepted it
/// but before the answer arrived is delivered twice. The outbox keeps that window as small as the
/// provider allows.
#[async_trait]
pub trait EmailProvider: Send + Sync + fmt::Debug {
    /// Provider name (`"sendgrid"`).
    fn name(&self) -> &str;

    /// What this provider supports.
    fn capabilities(&self) -> EmailCapabilities;

    /// Sends a message and returns the provider's message id.
    async fn send(&self, message: &EmailMessage) -> Result<SentEmail>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_message() -> EmailMessageBuilder {
        EmailMessage::builder(Mailbox::named("shop@example.com", "Shop"))
            .to("jane@example.com")
            .subject("Order confirmed")
            .text("Thanks!")
    }

    #[test]
    fn validation_names_fields() {
        assert!(ok_message().build().validate().is_ok());
        let e = EmailMessage::builder("shop@example.com")
            .subject("s")
            .text("t")
            .build()
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), Some("personalizations"));
        let e = ok_message()
            .personalization(Personalization::to("ok@example.com").cc("nope"))
            .build()
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), Some("personalizations[1].cc[0].email"));
        let e = EmailMessage::builder("shop@example.com")
            .to("a@example.com")
            .subject("s")
            .build()
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), Some("content"));
        let e = EmailMessage::builder("bad sender")
            .to("a@example.com")
            .build()
            .validate()
            .unwrap_err();
        assert_eq!(e.field(), Some("from.email"));
        let t = EmailMessage::builder("shop@example.com")
            .to("a@example.com")
            .template("d-123")
            .variable("name", "Jane")
            .build();
        assert!(t.validate().is_ok());
    }

    #[test]
    fn address_syntax() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(is_valid_address(ok), "{ok}");
        }
        for bad in [
            "", "a", "@b.co", "a@", "a@b", "a@@b.co", "a b@c.co", "a@b..co", "a@.b.co",
        ] {
            assert!(!is_valid_address(bad), "{bad}");
        }
    }

    #[test]
    fn header_specials_and_control_characters_are_refused() {
        for bad in [
            "a<b@c.co",
            "a>b@c.co",
            "a,b@c.co",
            "a;b@c.co",
            "a:b@c.co",
            "\"a\"@c.co",
            "a\r\nBcc: x@evil.co@c.co",
            "a\u{0}@c.co",
            "victim@c.co>, <attacker@evil.co",
        ] {
            assert!(!is_valid_address(bad), "{bad:?}");
        }
        let e = EmailMessage::builder("shop@example.com")
            .to("a\"@example.com")
            .subject("s")
            .text("t")
            .build()
            .validate()
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("personalizations[0].to[0].email"));
        for name in [
            "Shop\r\nBcc: attacker@evil.co",
            "Shop\n",
            "Shop\u{0}",
            "Shop\u{2028}x",
            "Tab\there",
        ] {
            let e = EmailMessage::builder(Mailbox::named("shop@example.com", name))
                .to("a@example.com")
                .subject("s")
                .text("t")
                .build()
                .validate()
                .unwrap_err();
            assert_eq!(e.field(), Some("from.name"), "{name:?}");
            let e = ok_message()
                .reply_to(Mailbox::named("r@example.com", name))
                .build()
                .validate()
                .unwrap_err();
            assert_eq!(e.field(), Some("reply_to.name"), "{name:?}");
            let e = ok_message()
                .personalization(Personalization::to(Mailbox::named("b@example.com", name)))
                .build()
                .validate()
                .unwrap_err();
            assert_eq!(
                e.field(),
                Some("personalizations[1].to[0].name"),
                "{name:?}"
            );
        }
        // Quotes, commas and non-ASCII are fine in a name (providers quote or encode it).
        assert!(
            ok_message()
                .to(Mailbox::named("b@example.com", "Doe, \"Jane\" Ünïcode"))
                .build()
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn attachment_debug_hides_content() {
        let m = ok_message()
            .attachment("r.pdf", "application/pdf", b"SECRETBYTES".to_vec())
            .build();
        assert!(!format!("{m:?}").contains("SECRETBYTES"));
    }
}
