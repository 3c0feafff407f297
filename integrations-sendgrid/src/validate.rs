//! SendGrid's documented Mail Send limits, checked before any request is made.
//!
//! Each rule comes from the Mail Send OpenAPI (`tsg_mail_v3.json`) or SendGrid's Mail Send
//! limitations. Errors are [`Error::InvalidInput`] naming the field in the bracket style core uses
//! (`personalizations[0].to[1].email`).

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::clock::unix_seconds;
use integrations_core::provider::email::is_valid_address;
use integrations_core::{Error, Result};

use crate::PROVIDER;
use crate::mail::{Address, MailSend, TEXT_HTML, TEXT_PLAIN};

/// Most envelopes in one request (`personalizations.maxItems`).
pub const MAX_PERSONALIZATIONS: usize = 1000;
/// Most recipients (to + cc + bcc over all envelopes) in one request.
pub const MAX_RECIPIENTS: usize = 1000;
/// Most categories (`categories.maxItems`).
pub const MAX_CATEGORIES: usize = 10;
/// Longest category, in characters (`categories.items.maxLength`).
pub const MAX_CATEGORY_CHARS: usize = 255;
/// Largest `custom_args` object, in bytes of JSON, at message level and per envelope.
pub const MAX_CUSTOM_ARGS_BYTES: usize = 10_000;
/// Furthest ahead a send can be scheduled.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(72 * 3600);
/// Largest request body SendGrid accepts (30 MB, attachments included).
pub const MAX_BODY_BYTES: usize = 30 * 1024 * 1024;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::invalid_input(field.into(), message).with_provider(PROVIDER)
}

fn check_address(a: &Address, field: &str) -> Result<()> {
    if is_valid_address(&a.email) {
        Ok(())
    } else {
        Err(invalid(
            format!("{field}.email"),
            format!("`{}` is not a valid address", a.email),
        ))
    }
}

fn check_custom_args(args: &std::collections::BTreeMap<String, String>, field: &str) -> Result<()> {
    let size = serde_json::to_vec(args).map_or(usize::MAX, |v| v.len());
    if size > MAX_CUSTOM_ARGS_BYTES {
        return Err(invalid(
            field,
            format!("custom_args take {size} bytes; SendGrid allows {MAX_CUSTOM_ARGS_BYTES}"),
        ));
    }
    Ok(())
}

/// Checks `mail` against SendGrid's documented rules, with `now` for the scheduling window.
///
/// Checked: a valid sender and reply-to; 1..=1000 envelopes, each with at least one `to`; at most
/// 1000 recipients in all; valid, and within one envelope unique, addresses; non-empty subjects;
/// a subject unless a template supplies it; content or a template; content parts non-empty, with
/// `text/plain` before `text/html`; a dynamic template id (`d-…`); attachments with a file name
/// and base64 content; at most 10 unique categories of at most 255 characters; `custom_args` of at
/// most 10,000 bytes; `send_at` not before 1970 and at most 72 hours after `now`.
///
/// # Errors
/// [`Error::InvalidInput`] naming the first offending field.
pub fn validate_mail(mail: &MailSend, now: SystemTime) -> Result<()> {
    check_address(&mail.from, "from")?;
    if let Some(r) = &mail.reply_to {
        check_address(r, "reply_to")?;
    }
    validate_personalizations(mail, now)?;
    validate_body(mail)?;
    validate_extras(mail, now)
}

fn validate_personalizations(mail: &MailSend, now: SystemTime) -> Result<()> {
    let ps = &mail.personalizations;
    if ps.is_empty() {
        return Err(invalid(
            "personalizations",
            "at least one recipient is required",
        ));
    }
    if ps.len() > MAX_PERSONALIZATIONS {
        return Err(invalid(
            "personalizations",
            format!(
                "{} personalizations; SendGrid allows {MAX_PERSONALIZATIONS}",
                ps.len()
            ),
        ));
    }
    let mut total = 0usize;
    for (i, p) in ps.iter().enumerate() {
        if p.to.is_empty() {
            return Err(invalid(
                format!("personalizations[{i}].to"),
                "at least one recipient is required",
            ));
        }
        let mut seen = HashSet::new();
        for (list, name) in [(&p.to, "to"), (&p.cc, "cc"), (&p.bcc, "bcc")] {
            for (j, a) in list.iter().enumerate() {
                let field = format!("personalizations[{i}].{name}[{j}]");
                check_address(a, &field)?;
                if !seen.insert(a.email.to_ascii_lowercase()) {
                    return Err(invalid(
                        format!("{field}.email"),
                        format!(
                            "`{}` appears more than once in this personalization (to, cc and bcc must be unique)",
                            a.email
                        ),
                    ));
                }
            }
        }
        total += p.to.len() + p.cc.len() + p.bcc.len();
        if p.subject.as_deref() == Some("") {
            return Err(invalid(
                format!("personalizations[{i}].subject"),
                "must not be empty",
            ));
        }
        check_custom_args(
            &p.custom_args,
            &format!("personalizations[{i}].custom_args"),
        )?;
        if let Some(at) = p.send_at {
            check_send_at(at, now, &format!("personalizations[{i}].send_at"))?;
        }
    }
    if total > MAX_RECIPIENTS {
        return Err(invalid(
            "personalizations",
            format!(
                "{total} recipients; SendGrid allows {MAX_RECIPIENTS} per request (to, cc and bcc of all personalizations)"
            ),
        ));
    }
    Ok(())
}

fn validate_body(mail: &MailSend) -> Result<()> {
    if mail.subject.as_deref() == Some("") {
        return Err(invalid("subject", "must not be empty"));
    }
    if let Some(id) = &mail.template_id {
        if !id.starts_with("d-") || id.len() < 3 {
            return Err(invalid(
                "template_id",
                format!("`{id}` is not a dynamic template id (`d-…`)"),
            ));
        }
    } else {
        if mail.content.is_empty() {
            return Err(invalid("content", "text or html content is required"));
        }
        let subject_everywhere =
            mail.subject.is_some() || mail.personalizations.iter().all(|p| p.subject.is_some());
        if !subject_everywhere {
            return Err(invalid(
                "subject",
                "a subject is required (message level or in every personalization)",
            ));
        }
    }
    let mut rank_seen = 0u8;
    for (i, c) in mail.content.iter().enumerate() {
        if c.mime_type.is_empty() {
            return Err(invalid(format!("content[{i}].type"), "must not be empty"));
        }
        if c.value.is_empty() {
            return Err(invalid(format!("content[{i}].value"), "must not be empty"));
        }
        let rank = match c.mime_type.as_str() {
            TEXT_PLAIN => 0,
            TEXT_HTML => 1,
            _ => 2,
        };
        if rank < rank_seen {
            return Err(invalid(
                format!("content[{i}].type"),
                "text/plain must come first, then text/html, then any other content",
            ));
        }
        rank_seen = rank;
    }
    for (i, a) in mail.attachments.iter().enumerate() {
        if a.filename.is_empty() {
            return Err(invalid(
                format!("attachments[{i}].filename"),
                "must not be empty",
            ));
        }
        if a.content.is_empty() || STANDARD.decode(&a.content).is_err() {
            return Err(invalid(
                format!("attachments[{i}].content"),
                "must be non-empty base64",
            ));
        }
        if a.mime_type.as_deref() == Some("") {
            return Err(invalid(
                format!("attachments[{i}].type"),
                "must not be empty",
            ));
        }
        if let Some(d) = a.disposition.as_deref() {
            if d != "attachment" && d != "inline" {
                return Err(invalid(
                    format!("attachments[{i}].disposition"),
                    format!("`{d}` is neither `attachment` nor `inline`"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_extras(mail: &MailSend, now: SystemTime) -> Result<()> {
    if mail.categories.len() > MAX_CATEGORIES {
        return Err(invalid(
            "categories",
            format!(
                "{} categories; SendGrid allows {MAX_CATEGORIES}",
                mail.categories.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, c) in mail.categories.iter().enumerate() {
        let chars = c.chars().count();
        if chars == 0 || chars > MAX_CATEGORY_CHARS {
            return Err(invalid(
                format!("categories[{i}]"),
                format!("a category has 1 to {MAX_CATEGORY_CHARS} characters, this one {chars}"),
            ));
        }
        if !seen.insert(c.as_str()) {
            return Err(invalid(
                format!("categories[{i}]"),
                format!("`{c}` is repeated; categories must be unique"),
            ));
        }
    }
    check_custom_args(&mail.custom_args, "custom_args")?;
    if let Some(at) = mail.send_at {
        check_send_at(at, now, "send_at")?;
    }
    Ok(())
}

fn check_send_at(at: i64, now: SystemTime, field: &str) -> Result<()> {
    if at < 0 {
        return Err(invalid(field, "must not be before 1970"));
    }
    let limit = unix_seconds(now).saturating_add(MAX_SCHEDULE_AHEAD.as_secs() as i64);
    if at > limit {
        return Err(invalid(
            field,
            format!(
                "{at} is more than 72 hours after now ({}); SendGrid cannot schedule that far ahead",
                unix_seconds(now)
            ),
        ));
    }
    Ok(())
}

/// Checks the encoded body against SendGrid's 30 MB request limit.
///
/// # Errors
/// [`Error::InvalidInput`] naming `body`.
pub fn check_body_size(len: usize) -> Result<()> {
    if len > MAX_BODY_BYTES {
        return Err(invalid(
            "body",
            format!(
                "the request is {len} bytes; SendGrid accepts at most {MAX_BODY_BYTES} (attachments included)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Content, MailAttachment, MailPersonalization};
    use integrations_core::clock::from_unix_seconds;

    const NOW: i64 = 1_700_000_000;

    fn addr(e: &str) -> Address {
        Address {
            email: e.into(),
            name: None,
        }
    }

    fn ok_mail() -> MailSend {
        let mut m = MailSend::new(
            addr("shop@example.com"),
            MailPersonalization {
                to: vec![addr("a@example.com")],
                ..MailPersonalization::default()
            },
        );
        m.subject = Some("s".into());
        m.content = vec![Content {
            mime_type: TEXT_PLAIN.into(),
            value: "t".into(),
        }];
        m
    }

    fn field_of(m: &MailSend) -> String {
        validate_mail(m, from_unix_seconds(NOW))
            .unwrap_err()
            .field()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_plain_message_passes() {
        assert!(validate_mail(&ok_mail(), from_unix_seconds(NOW)).is_ok());
    }

    #[test]
    fn recipient_limits() {
        let mut m = ok_mail();
        m.personalizations = (0..=MAX_PERSONALIZATIONS)
            .map(|i| MailPersonalization {
                to: vec![addr(&format!("u{i}@example.com"))],
                ..MailPersonalization::default()
            })
            .collect();
        assert_eq!(field_of(&m), "personalizations");
        m.personalizations.truncate(MAX_PERSONALIZATIONS);
        assert!(validate_mail(&m, from_unix_seconds(NOW)).is_ok());
        m.personalizations[0].cc.push(addr("extra@example.com"));
        let e = validate_mail(&m, from_unix_seconds(NOW)).unwrap_err();
        assert!(e.message().contains("1001 recipients"), "{e}");
    }

    #[test]
    fn addresses_are_checked_and_unique_per_envelope() {
        let mut m = ok_mail();
        m.personalizations[0].bcc.push(addr("nope"));
        assert_eq!(field_of(&m), "personalizations[0].bcc[0].email");
        let mut m = ok_mail();
        m.personalizations[0].cc.push(addr("A@example.com"));
        assert_eq!(field_of(&m), "personalizations[0].cc[0].email");
        let mut m = ok_mail();
        m.personalizations[0].to.clear();
        assert_eq!(field_of(&m), "personalizations[0].to");
    }

    #[test]
    fn content_rules() {
        let mut m = ok_mail();
        m.content.insert(
            0,
            Content {
                mime_type: TEXT_HTML.into(),
                value: "<p>x</p>".into(),
            },
        );
        assert_eq!(field_of(&m), "content[1].type");
        let mut m = ok_mail();
        m.content.clear();
        assert_eq!(field_of(&m), "content");
        let mut m = ok_mail();
        m.subject = None;
        assert_eq!(field_of(&m), "subject");
        m.personalizations[0].subject = Some("per envelope".into());
        assert!(validate_mail(&m, from_unix_seconds(NOW)).is_ok());
        let mut m = ok_mail();
        m.content.clear();
        m.subject = None;
        m.template_id = Some("d-abc".into());
        assert!(validate_mail(&m, from_unix_seconds(NOW)).is_ok());
        m.template_id = Some("legacy-uuid".into());
        assert_eq!(field_of(&m), "template_id");
    }

    #[test]
    fn categories_custom_args_and_attachments() {
        let mut m = ok_mail();
        m.categories = (0..11).map(|i| format!("c{i}")).collect();
        assert_eq!(field_of(&m), "categories");
        m.categories = vec!["x".repeat(256)];
        assert_eq!(field_of(&m), "categories[0]");
        m.categories = vec!["a".into(), "a".into()];
        assert_eq!(field_of(&m), "categories[1]");
        m.categories = vec!["x".repeat(255)];
        assert!(validate_mail(&m, from_unix_seconds(NOW)).is_ok());

        let mut m = ok_mail();
        m.custom_args
            .insert("big".into(), "x".repeat(MAX_CUSTOM_ARGS_BYTES));
        assert_eq!(field_of(&m), "custom_args");
        let mut m = ok_mail();
        m.personalizations[0]
            .custom_args
            .insert("big".into(), "x".repeat(MAX_CUSTOM_ARGS_BYTES));
        assert_eq!(field_of(&m), "personalizations[0].custom_args");

        let mut m = ok_mail();
        m.attachments.push(MailAttachment {
            content: "not base64!".into(),
            mime_type: None,
            filename: "a.txt".into(),
            disposition: None,
            content_id: None,
        });
        assert_eq!(field_of(&m), "attachments[0].content");
    }

    #[test]
    fn send_at_window() {
        let mut m = ok_mail();
        m.send_at = Some(NOW + 72 * 3600);
        assert!(validate_mail(&m, from_unix_seconds(NOW)).is_ok());
        m.send_at = Some(NOW + 72 * 3600 + 1);
        assert_eq!(field_of(&m), "send_at");
        m.send_at = Some(-1);
        assert_eq!(field_of(&m), "send_at");
    }

    #[test]
    fn body_size_limit() {
        assert!(check_body_size(MAX_BODY_BYTES).is_ok());
        assert_eq!(
            check_body_size(MAX_BODY_BYTES + 1).unwrap_err().field(),
            Some("body")
        );
    }
}
