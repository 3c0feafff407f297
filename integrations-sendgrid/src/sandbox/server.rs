//! SendGrid's protocol as a [`SandboxService`]: `POST /v3/mail/send` (auth, the per-minute rate
//! limit, validation, acceptance) and SendGrid's error bodies for injected faults. The server
//! itself — accept loop, body limit, fault plan, hang and drop, request log — is the testkit's
//! [`SandboxServer`](integrations_testkit::sandbox::SandboxServer).

use std::fmt;

use async_trait::async_trait;
use http::Method;
use integrations_core::clock::unix_seconds;
use integrations_testkit::sandbox::{Fault, SandboxRequest, SandboxResponse, SandboxService};

use super::rules::{self, SgError, error_body};
use super::{AcceptedMessage, Shared, events};
use crate::client::{
    MAIL_SEND_PATH, MESSAGE_ID_HEADER, MESSAGES_PATH, RATE_LIMIT_LIMIT_HEADER,
    RATE_LIMIT_REMAINING_HEADER, RATE_LIMIT_RESET_HEADER,
};
use crate::mail::MailSend;
use crate::validate::MAX_BODY_BYTES;

/// The operation name of `POST /v3/mail/send` (for [`FaultRule::on`](super::FaultRule::on) and
/// the request log).
pub(super) const MAIL_SEND: &str = "mail.send";

/// Rate-limit headers to add to an answer: `(limit, remaining, reset)`; reset omitted when `None`.
type Rate = Option<(u32, u32, Option<i64>)>;

fn json_error(status: u16, errors: &[SgError], rate: Rate) -> SandboxResponse {
    with_rate(
        SandboxResponse::new(status)
            .with_header("content-type", "application/json")
            .with_body(error_body(errors)),
        rate,
    )
}

fn with_rate(mut resp: SandboxResponse, rate: Rate) -> SandboxResponse {
    if let Some((limit, remaining, reset)) = rate {
        resp = resp
            .with_header(RATE_LIMIT_LIMIT_HEADER, limit.to_string())
            .with_header(RATE_LIMIT_REMAINING_HEADER, remaining.to_string());
        if let Some(reset) = reset {
            resp = resp.with_header(RATE_LIMIT_RESET_HEADER, reset.to_string());
        }
    }
    resp
}

fn one(message: &str) -> Vec<SgError> {
    vec![SgError::new(message, None, None)]
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGridSandboxService")
            .field("messages", &self.lock().messages.len())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SandboxService for Shared {
    fn operation(&self, req: &SandboxRequest) -> String {
        if req.method == Method::POST && req.path() == MAIL_SEND_PATH {
            MAIL_SEND.to_owned()
        } else {
            format!("{} {}", req.method, req.path())
        }
    }

    async fn handle(&self, req: SandboxRequest) -> SandboxResponse {
        if req.path() == MESSAGES_PATH {
            if req.method != Method::GET {
                return SandboxResponse::new(405).with_header("allow", "GET");
            }
            return self.messages_filter(&req);
        }
        if req.path() != MAIL_SEND_PATH {
            return json_error(404, &one("not found"), None);
        }
        if req.method != Method::POST {
            return SandboxResponse::new(405).with_header("allow", "POST");
        }
        self.mail_send(&req)
    }

    fn fault_response(&self, fault: Fault, _req: &SandboxRequest) -> SandboxResponse {
        match fault {
            Fault::RateLimited { retry_after } => {
                let now = unix_seconds(self.clock.now());
                let limit = self.lock().rate_limit.unwrap_or(600);
                let reset = retry_after.map(|d| {
                    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                    now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
                });
                json_error(429, &one("too many requests"), Some((limit, 0, reset)))
            }
            Fault::Unavailable => json_error(503, &one("service unavailable"), None),
            // `ServerError`, and any fault a later testkit adds that answers something.
            _ => json_error(fault.status().max(500), &one("internal server error"), None),
        }
    }
}

impl Shared {
    fn unauthorized(&self, req: &SandboxRequest) -> Option<SandboxResponse> {
        match req.header("authorization") {
            None => Some(json_error(401, &one("authorization required"), None)),
            Some(a) if a != format!("Bearer {}", self.api_key) => Some(json_error(
                401,
                &one("The provided authorization grant is invalid, expired, or revoked"),
                None,
            )),
            Some(_) => None,
        }
    }

    /// `GET /v3/messages?limit=…&query=…`: the Email Activity feed over the accepted messages
    /// kept, newest first. Only the custom-arg query `unique_args['name']="value"` is understood
    /// (it matches the message's or any personalization's custom args); any other is a 400.
    /// Unlike SendGrid's feed, a message is listed as soon as it is accepted.
    fn messages_filter(&self, req: &SandboxRequest) -> SandboxResponse {
        if let Some(r) = self.unauthorized(req) {
            return r;
        }
        let mut limit = 10_usize;
        let mut query = None;
        for (k, v) in url::form_urlencoded::parse(req.query().as_bytes()) {
            match &*k {
                "limit" => match v.parse::<usize>() {
                    Ok(n) if (1..=1000).contains(&n) => limit = n,
                    _ => return json_error(400, &one("invalid limit"), None),
                },
                "query" => query = Some(v.into_owned()),
                _ => {}
            }
        }
        let Some((name, value)) = query.as_deref().and_then(parse_custom_arg_query) else {
            return json_error(400, &one("invalid query"), None);
        };
        let s = self.lock();
        let mut out = Vec::new();
        for id in s.messages.items.iter().rev() {
            let Some(m) = s.by_id.get(id) else { continue };
            let has = |args: &std::collections::BTreeMap<String, String>| {
                args.get(name).is_some_and(|v| v == value)
            };
            if !(has(&m.mail.custom_args)
                || m.mail.personalizations.iter().any(|p| has(&p.custom_args)))
            {
                continue;
            }
            for p in &m.mail.personalizations {
                for to in &p.to {
                    out.push(serde_json::json!({
                        "msg_id": format!("{}.filter0001.{}", m.message_id, out.len()),
                        "from_email": m.mail.from.email,
                        "to_email": to.email,
                        "subject": p.subject.as_ref().or(m.mail.subject.as_ref()),
                        "status": "processed",
                        "opens_count": 0,
                        "clicks_count": 0,
                        "last_event_time": null,
                    }));
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        out.truncate(limit);
        SandboxResponse::new(200)
            .with_header("content-type", "application/json")
            .with_body(serde_json::json!({ "messages": out }).to_string())
    }

    fn mail_send(&self, req: &SandboxRequest) -> SandboxResponse {
        let now = unix_seconds(self.clock.now());
        if let Some(r) = self.unauthorized(req) {
            return r;
        }

        let rate = {
            let mut s = self.lock();
            match s.rate_limit {
                None => None,
                Some(limit) => {
                    let minute = now.div_euclid(60);
                    if s.window.0 != minute {
                        s.window = (minute, 0);
                    }
                    let reset = (minute + 1) * 60;
                    if s.window.1 >= limit {
                        return json_error(
                            429,
                            &one("too many requests"),
                            Some((limit, 0, Some(reset))),
                        );
                    }
                    s.window.1 += 1;
                    Some((limit, limit - s.window.1, Some(reset)))
                }
            }
        };

        if req.body.len() > MAX_BODY_BYTES {
            return json_error(413, &one("content too large"), rate);
        }
        let value: serde_json::Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => return json_error(400, &one("Bad Request"), rate),
        };
        let errors = rules::validate(&value, now);
        if !errors.is_empty() {
            return json_error(400, &errors, rate);
        }
        let sandbox_mode = value
            .pointer("/mail_settings/sandbox_mode/enable")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if sandbox_mode {
            return with_rate(SandboxResponse::new(200), rate);
        }
        let mail: MailSend = match serde_json::from_value(value.clone()) {
            Ok(m) => m,
            Err(e) => {
                return json_error(400, &[SgError::new(e.to_string(), None, None)], rate);
            }
        };
        let message_id = events::message_id();
        let accepted = AcceptedMessage {
            message_id: message_id.clone(),
            mail,
            body: value,
            on_behalf_of: req.header("on-behalf-of").map(str::to_owned),
            received_at: self.clock.now(),
        };
        let (auto, shared) = {
            let mut s = self.lock();
            s.accept(accepted.clone());
            (s.auto_events.clone(), self.this.upgrade())
        };
        if let (false, Some(shared)) = (auto.is_empty(), shared) {
            tokio::spawn(async move {
                if let Err(e) = events::deliver(&shared, &[accepted], &auto).await {
                    tracing::warn!(error = %e, "sandbox event delivery failed");
                }
            });
        }
        with_rate(SandboxResponse::new(202), rate).with_header(MESSAGE_ID_HEADER, &message_id)
    }
}

/// `unique_args['name']="value"` → `(name, value)`.
fn parse_custom_arg_query(q: &str) -> Option<(&str, &str)> {
    let rest = q.trim().strip_prefix("unique_args['")?;
    let (name, rest) = rest.split_once("']")?;
    let value = rest.trim().strip_prefix('=')?.trim();
    let value = value.strip_prefix('"')?.strip_suffix('"')?;
    Some((name, value))
}
