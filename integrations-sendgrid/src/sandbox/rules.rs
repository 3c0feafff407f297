//! The sandbox's check of a Mail Send body, on the raw JSON, answering in SendGrid's error shape.
//!
//! Rules are the ones SendGrid's Mail Send OpenAPI states (required fields, types, `minLength`,
//! `maxItems`, enums) and its documented limits (1000 recipients, 72 h scheduling, content order,
//! unique addresses per personalization, `custom_args` size). Messages reuse SendGrid's wording
//! where it is known from real answers; fields use SendGrid's dotted form
//! (`personalizations.0.to.0.email`). All errors are collected, as SendGrid does.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use integrations_core::provider::email::is_valid_address;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::validate::{
    MAX_CATEGORIES, MAX_CATEGORY_CHARS, MAX_CUSTOM_ARGS_BYTES, MAX_PERSONALIZATIONS,
    MAX_RECIPIENTS, MAX_SCHEDULE_AHEAD,
};

const HELP: &str = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html";

/// One entry of SendGrid's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SgError {
    pub(crate) message: String,
    pub(crate) field: Option<String>,
    pub(crate) help: Option<String>,
}

impl SgError {
    pub(crate) fn new(
        message: impl Into<String>,
        field: Option<String>,
        anchor: Option<&str>,
    ) -> Self {
        SgError {
            message: message.into(),
            field,
            help: anchor.map(|a| format!("{HELP}#{a}")),
        }
    }
}

/// `{"errors":[…]}`.
pub(crate) fn error_body(errors: &[SgError]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "errors": errors })).unwrap_or_default()
}

struct Check {
    errors: Vec<SgError>,
}

impl Check {
    fn err(&mut self, message: impl Into<String>, field: impl Into<String>, anchor: &str) {
        self.errors
            .push(SgError::new(message, Some(field.into()), Some(anchor)));
    }

    fn type_of(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    fn expect<'v>(
        &mut self,
        v: &'v Value,
        want: &str,
        field: &str,
        anchor: &str,
    ) -> Option<&'v Value> {
        let ok = match want {
            "integer" => v.is_i64() || v.is_u64(),
            other => Check::type_of(v) == other,
        };
        if ok {
            Some(v)
        } else {
            self.err(
                format!(
                    "Invalid type. Expected: {want}, given: {}.",
                    Check::type_of(v)
                ),
                field,
                anchor,
            );
            None
        }
    }

    /// An address object; returns its lower-cased email when valid.
    fn address(&mut self, v: &Value, field: &str, anchor: &str, what: &str) -> Option<String> {
        let obj = self.expect(v, "object", field, anchor)?.as_object()?;
        let Some(email) = obj.get("email") else {
            self.err(
                format!("The {what} email parameter is required."),
                format!("{field}.email"),
                anchor,
            );
            return None;
        };
        let email = self
            .expect(email, "string", &format!("{field}.email"), anchor)?
            .as_str()?;
        if let Some(name) = obj.get("name") {
            self.expect(name, "string", &format!("{field}.name"), anchor);
        }
        if is_valid_address(email) {
            Some(email.to_ascii_lowercase())
        } else {
            self.err(
                "Does not contain a valid address.",
                format!("{field}.email"),
                anchor,
            );
            None
        }
    }

    fn custom_args(&mut self, v: &Value, field: &str) {
        let Some(obj) = self
            .expect(v, "object", field, "message.custom_args")
            .and_then(Value::as_object)
        else {
            return;
        };
        for (k, val) in obj {
            self.expect(
                val,
                "string",
                &format!("{field}.{k}"),
                "message.custom_args",
            );
        }
        let size = serde_json::to_vec(obj).map_or(usize::MAX, |b| b.len());
        if size > MAX_CUSTOM_ARGS_BYTES {
            self.err(
                format!("The custom_args may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes."),
                field,
                "message.custom_args",
            );
        }
    }

    fn send_at(&mut self, v: &Value, field: &str, now_unix: i64) {
        let Some(at) = self
            .expect(v, "integer", field, "message.send_at")
            .and_then(Value::as_i64)
        else {
            return;
        };
        let limit = now_unix.saturating_add(MAX_SCHEDULE_AHEAD.as_secs() as i64);
        if at < 0 || at > limit {
            self.err(
                "The send_at parameter must be a unix timestamp no more than 72 hours in the future.",
                field,
                "message.send_at",
            );
        }
    }
}

/// Checks a Mail Send body; an empty result means SendGrid would accept it.
pub(crate) fn validate(body: &Value, now_unix: i64) -> Vec<SgError> {
    let mut c = Check { errors: Vec::new() };
    let Some(root) = body.as_object() else {
        c.errors.push(SgError::new(
            format!(
                "Invalid type. Expected: object, given: {}.",
                Check::type_of(body)
            ),
            None,
            Some("message"),
        ));
        return c.errors;
    };
    personalizations(&mut c, root, now_unix);
    match root.get("from") {
        None => c.err(
            "The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.  e.g. {\"email\" : \"example@example.com\"}  or {\"email\" : \"example@example.com\", \"name\" : \"Example Recipient\"}.",
            "from.email",
            "message.from",
        ),
        Some(f) => {
            c.address(f, "from", "message.from", "from");
        }
    }
    if let Some(r) = root.get("reply_to") {
        c.address(r, "reply_to", "message.reply_to", "reply_to");
        if root.contains_key("reply_to_list") {
            c.err(
                "You can only use reply_to or reply_to_list, not both.",
                "reply_to_list",
                "message.reply_to",
            );
        }
    }
    content(&mut c, root);
    attachments(&mut c, root);
    categories(&mut c, root);
    if let Some(a) = root.get("custom_args") {
        c.custom_args(a, "custom_args");
    }
    if let Some(s) = root.get("send_at") {
        c.send_at(s, "send_at", now_unix);
    }
    if let Some(p) = root
        .get("ip_pool_name")
        .and_then(|p| c.expect(p, "string", "ip_pool_name", "message.ip_pool_name"))
    {
        let n = p.as_str().map_or(0, |s| s.chars().count());
        if !(2..=64).contains(&n) {
            c.err(
                "The ip_pool_name must be between 2 and 64 characters.",
                "ip_pool_name",
                "message.ip_pool_name",
            );
        }
    }
    if let Some(asm) = root
        .get("asm")
        .and_then(|a| c.expect(a, "object", "asm", "message.asm"))
    {
        match asm.get("group_id") {
            Some(g) => {
                c.expect(g, "integer", "asm.group_id", "message.asm");
            }
            None => c.err(
                "The asm group_id is required.",
                "asm.group_id",
                "message.asm",
            ),
        }
        if let Some(groups) = asm.get("groups_to_display").and_then(Value::as_array) {
            if groups.len() > 25 {
                c.err(
                    "The asm groups_to_display may have at most 25 groups.",
                    "asm.groups_to_display",
                    "message.asm",
                );
            }
        }
    }
    c.errors
}

const PERSONALIZATIONS_ANCHOR: &str = "-Personalizations-Errors";

fn personalizations(c: &mut Check, root: &Map<String, Value>, now_unix: i64) {
    let Some(list) = personalization_list(c, root) else {
        return;
    };
    if list.len() > MAX_PERSONALIZATIONS {
        c.err(
            format!("The personalizations field may have at most {MAX_PERSONALIZATIONS} personalizations."),
            "personalizations",
            PERSONALIZATIONS_ANCHOR,
        );
    }
    let mut total = 0usize;
    for (i, p) in list.iter().enumerate() {
        total += personalization(c, i, p, now_unix);
    }
    if total > MAX_RECIPIENTS {
        c.err(
            format!("The total number of recipients (to, cc and bcc of all personalizations) must be no more than {MAX_RECIPIENTS}."),
            "personalizations",
            "message.recipient-errors",
        );
    }
}

/// The `personalizations` array, which is required and not empty.
fn personalization_list<'r>(c: &mut Check, root: &'r Map<String, Value>) -> Option<&'r Vec<Value>> {
    match root.get("personalizations") {
        Some(Value::Array(a)) if !a.is_empty() => Some(a),
        Some(
            v @ (Value::Null
            | Value::Bool(_)
            | Value::Number(_)
            | Value::String(_)
            | Value::Object(_)),
        ) => {
            c.expect(v, "array", "personalizations", PERSONALIZATIONS_ANCHOR);
            None
        }
        _ => {
            c.err(
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
                PERSONALIZATIONS_ANCHOR,
            );
            None
        }
    }
}

/// Checks personalization `i`; returns how many recipients it names.
fn personalization(c: &mut Check, i: usize, p: &Value, now_unix: i64) -> usize {
    let field = format!("personalizations.{i}");
    let Some(p) = c
        .expect(p, "object", &field, PERSONALIZATIONS_ANCHOR)
        .and_then(Value::as_object)
    else {
        return 0;
    };
    let total = recipients(c, &field, p);
    personalization_fields(c, &field, p, now_unix);
    total
}

/// Checks `to`, `cc` and `bcc` (addresses unique across the three); returns
/// how many recipients they name.
fn recipients(c: &mut Check, field: &str, p: &Map<String, Value>) -> usize {
    let mut total = 0usize;
    let mut seen = HashSet::new();
    for kind in ["to", "cc", "bcc"] {
        let anchor = format!("message.personalizations.{kind}");
        let f = format!("{field}.{kind}");
        let Some(recipients) = recipient_list(c, p, kind, &f, &anchor) else {
            continue;
        };
        if kind != "to" && recipients.len() > MAX_RECIPIENTS {
            c.err(
                format!("The {kind} array may have at most {MAX_RECIPIENTS} recipients."),
                &f,
                &anchor,
            );
        }
        total += recipients.len();
        for (j, r) in recipients.iter().enumerate() {
            if let Some(email) = c.address(r, &format!("{f}.{j}"), &anchor, kind) {
                if !seen.insert(email.clone()) {
                    c.err(
                        format!("Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [{email}] in the {f} field."),
                        field,
                        "message.recipient-errors",
                    );
                }
            }
        }
    }
    total
}

/// The `kind` array of a personalization: `to` is required and not empty,
/// `cc` and `bcc` are optional.
fn recipient_list<'p>(
    c: &mut Check,
    p: &'p Map<String, Value>,
    kind: &str,
    f: &str,
    anchor: &str,
) -> Option<&'p Vec<Value>> {
    match p.get(kind) {
        Some(Value::Array(a)) if !(kind == "to" && a.is_empty()) => Some(a),
        None if kind != "to" => None,
        Some(v) if !v.is_array() => {
            c.expect(v, "array", f, anchor);
            None
        }
        _ => {
            c.err(
                "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                f,
                anchor,
            );
            None
        }
    }
}

/// A personalization's `subject`, `dynamic_template_data`, `custom_args` and `send_at`.
fn personalization_fields(c: &mut Check, field: &str, p: &Map<String, Value>, now_unix: i64) {
    if let Some(s) = p.get("subject") {
        if c.expect(s, "string", &format!("{field}.subject"), "message.subject")
            .and_then(Value::as_str)
            == Some("")
        {
            c.err(
                "The subject must be at least one character in length.",
                format!("{field}.subject"),
                "message.subject",
            );
        }
    }
    if let Some(d) = p.get("dynamic_template_data") {
        c.expect(
            d,
            "object",
            &format!("{field}.dynamic_template_data"),
            "message.personalizations",
        );
    }
    if let Some(a) = p.get("custom_args") {
        c.custom_args(a, &format!("{field}.custom_args"));
    }
    if let Some(s) = p.get("send_at") {
        c.send_at(s, &format!("{field}.send_at"), now_unix);
    }
}

fn content(c: &mut Check, root: &Map<String, Value>) {
    let has_template = has_template(c, root);
    if !subject_given(c, root) && !has_template {
        c.err(
            "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
            "subject",
            "message.subject",
        );
    }
    let Some(parts) = content_parts(c, root) else {
        return;
    };
    if parts.is_empty() && !has_template {
        c.err(
            "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined content block. We typically suggest both text/plain and text/html blocks are included, but only one block is required.",
            "content",
            "message.content",
        );
    }
    let mut ranks = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        content_part(c, i, part, &mut ranks);
    }
    if ranks.windows(2).any(|w| w[1] < w[0]) {
        c.err(
            "Following RFC 1341, section 7.2, if either text/html or text/plain are to be sent in your email: text/plain needs to be first, followed by text/html, followed by any other content.",
            "content",
            "message.content",
        );
    }
}

/// Whether a non-empty `template_id` string is given.
fn has_template(c: &mut Check, root: &Map<String, Value>) -> bool {
    match root.get("template_id") {
        Some(t) => c
            .expect(t, "string", "template_id", "message.template_id")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        None => false,
    }
}

/// Whether a subject is given, at the top level or in every personalization
/// (an empty top-level subject is reported, and counts as given).
fn subject_given(c: &mut Check, root: &Map<String, Value>) -> bool {
    match root.get("subject") {
        Some(s) => match c
            .expect(s, "string", "subject", "message.subject")
            .and_then(Value::as_str)
        {
            Some("") => {
                c.err(
                    "The subject must be at least one character in length.",
                    "subject",
                    "message.subject",
                );
                true
            }
            Some(_) => true,
            None => true,
        },
        None => root
            .get("personalizations")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().all(|p| p.get("subject").is_some())),
    }
}

/// The `content` blocks (none when absent); `None` when `content` is not an array.
fn content_parts(c: &mut Check, root: &Map<String, Value>) -> Option<Vec<Value>> {
    match root.get("content") {
        None => Some(Vec::new()),
        Some(v) => c
            .expect(v, "array", "content", "message.content")
            .and_then(Value::as_array)
            .cloned(),
    }
}

/// Checks content block `i`'s `type` and `value`; pushes the rank of its
/// type (text/plain, text/html, other) to `ranks`.
fn content_part(c: &mut Check, i: usize, part: &Value, ranks: &mut Vec<u8>) {
    let f = format!("content.{i}");
    let Some(obj) = c
        .expect(part, "object", &f, "message.content")
        .and_then(Value::as_object)
    else {
        return;
    };
    for key in ["type", "value"] {
        match obj.get(key).map(|v| {
            c.expect(v, "string", &format!("{f}.{key}"), "message.content")
                .and_then(Value::as_str)
        }) {
            None => c.err(
                format!("The content {key} parameter is required."),
                format!("{f}.{key}"),
                "message.content",
            ),
            Some(Some("")) => c.err(
                format!("The content {key} must be a string at least one character in length."),
                format!("{f}.{key}"),
                "message.content",
            ),
            Some(Some(t)) if key == "type" => ranks.push(match t {
                "text/plain" => 0,
                "text/html" => 1,
                _ => 2,
            }),
            _ => {}
        }
    }
}

fn attachments(c: &mut Check, root: &Map<String, Value>) {
    let Some(list) = root
        .get("attachments")
        .and_then(|v| c.expect(v, "array", "attachments", "message.attachments"))
        .and_then(Value::as_array)
    else {
        return;
    };
    for (i, a) in list.iter().enumerate() {
        let f = format!("attachments.{i}");
        let Some(obj) = c
            .expect(a, "object", &f, "message.attachments")
            .and_then(Value::as_object)
        else {
            continue;
        };
        match obj.get("content").map(|v| {
            c.expect(v, "string", &format!("{f}.content"), "message.attachments")
                .and_then(Value::as_str)
        }) {
            None | Some(Some("")) => c.err(
                "The attachment content is required.",
                format!("{f}.content"),
                "message.attachments",
            ),
            Some(Some(s)) if STANDARD.decode(s).is_err() => {
                c.err(
                    "The attachment content must be base64 encoded.",
                    format!("{f}.content"),
                    "message.attachments",
                );
            }
            _ => {}
        }
        match obj.get("filename").map(|v| {
            c.expect(v, "string", &format!("{f}.filename"), "message.attachments")
                .and_then(Value::as_str)
        }) {
            None | Some(Some("")) => c.err(
                "The attachment filename parameter is required.",
                format!("{f}.filename"),
                "message.attachments",
            ),
            _ => {}
        }
        if let Some(Some("")) = obj.get("type").map(Value::as_str) {
            c.err(
                "The attachment type must be at least one character in length.",
                format!("{f}.type"),
                "message.attachments",
            );
        }
        if let Some(d) = obj.get("disposition") {
            if !matches!(d.as_str(), Some("inline" | "attachment")) {
                c.err(
                    "The attachment disposition must be either inline or attachment.",
                    format!("{f}.disposition"),
                    "message.attachments",
                );
            }
        }
    }
}

fn categories(c: &mut Check, root: &Map<String, Value>) {
    let Some(list) = root
        .get("categories")
        .and_then(|v| c.expect(v, "array", "categories", "message.categories"))
        .and_then(Value::as_array)
    else {
        return;
    };
    if list.len() > MAX_CATEGORIES {
        c.err(format!("Too many categories on this message. The maximum number of categories is {MAX_CATEGORIES}."), "categories", "message.categories");
    }
    let mut seen = HashSet::new();
    for (i, cat) in list.iter().enumerate() {
        let f = format!("categories.{i}");
        let Some(s) = c
            .expect(cat, "string", &f, "message.categories")
            .and_then(Value::as_str)
        else {
            continue;
        };
        if s.chars().count() > MAX_CATEGORY_CHARS {
            c.err(
                format!("A category cannot exceed {MAX_CATEGORY_CHARS} characters."),
                &f,
                "message.categories",
            );
        }
        if !seen.insert(s) {
            c.err("The categories must be unique.", &f, "message.categories");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn fields(v: Value) -> Vec<String> {
        validate(&v, NOW)
            .into_iter()
            .map(|e| e.field.unwrap_or_default())
            .collect()
    }

    fn ok() -> Value {
        json!({
            "personalizations": [{"to": [{"email": "a@example.com"}]}],
            "from": {"email": "shop@example.com"},
            "subject": "s",
            "content": [{"type": "text/plain", "value": "t"}]
        })
    }

    #[test]
    fn a_plain_message_passes() {
        assert!(validate(&ok(), NOW).is_empty());
    }

    #[test]
    fn all_errors_are_collected_with_dotted_fields() {
        let v = json!({
            "personalizations": [{"to": [{"email": "bad"}], "cc": [{"email": "a@example.com"}, {"email": "A@example.com"}]}, {"to": []}],
            "from": "shop@example.com",
            "content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": ""}],
            "categories": ["a", "a"],
            "send_at": NOW + 72 * 3600 + 1
        });
        assert_eq!(
            fields(v),
            [
                "personalizations.0.to.0.email",
                "personalizations.0",
                "personalizations.1.to",
                "from",
                "subject",
                "content.1.value",
                "content",
                "categories.1",
                "send_at"
            ]
        );
    }

    #[test]
    fn template_replaces_subject_and_content() {
        let v = json!({
            "personalizations": [{"to": [{"email": "a@example.com"}], "dynamic_template_data": {"x": 1}}],
            "from": {"email": "shop@example.com"},
            "template_id": "d-1"
        });
        assert!(validate(&v, NOW).is_empty());
        assert_eq!(
            fields(
                json!({"personalizations": [{"to": [{"email": "a@example.com"}]}], "from": {"email": "s@example.com"}})
            ),
            ["subject", "content"]
        );
    }

    #[test]
    fn limits() {
        let many: Vec<Value> = (0..=MAX_RECIPIENTS)
            .map(|i| json!({"email": format!("u{i}@example.com")}))
            .collect();
        let mut v = ok();
        v["personalizations"][0]["to"] = Value::Array(many);
        assert_eq!(fields(v), ["personalizations"]);
        let mut v = ok();
        v["custom_args"] = json!({"k": "x".repeat(MAX_CUSTOM_ARGS_BYTES)});
        assert_eq!(fields(v), ["custom_args"]);
        let mut v = ok();
        v["attachments"] = json!([{"content": "!!", "filename": ""}]);
        assert_eq!(
            fields(v),
            ["attachments.0.content", "attachments.0.filename"]
        );
        assert_eq!(fields(json!([])), [""]);
    }
}
