//! The sandbox's OAuth token endpoint: verifies a service account's RS256 assertion like Google.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Value, json};

use super::server::Reply;
use super::state::State;
use crate::credentials::GOOGLE_TOKEN_URI;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Clock skew Google tolerates on `iat`.
const SKEW_SECS: u64 = 300;

fn oauth_error(status: u16, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn invalid_grant(description: &str) -> Reply {
    oauth_error(400, "invalid_grant", description)
}

/// Handles `POST /token` with a form body.
pub(crate) fn exchange(state: &mut State, body: &[u8]) -> Reply {
    state.stats.token_requests += 1;
    grant(state, body).unwrap_or_else(|refusal| refusal)
}

/// Checks the request and the assertion in Google's order, then issues a token.
fn grant(state: &mut State, body: &[u8]) -> Result<Reply, Reply> {
    let assertion = bearer_assertion(body)?;
    let claims = verified_claims(state, &assertion)?;
    check_audience(&claims)?;
    check_lifetime(&claims)?;
    let scopes = requested_scopes(&claims)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let lifetime = state.config.token_lifetime.as_secs();
    let token = state.issue_token(iss, scopes);
    Ok(Reply::json(
        200,
        json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}),
    ))
}

/// The form's `assertion`, when its `grant_type` is the JWT bearer grant.
fn bearer_assertion(body: &[u8]) -> Result<String, Reply> {
    let mut grant_type = None;
    let mut assertion = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match &*k {
            "grant_type" => grant_type = Some(v.into_owned()),
            "assertion" => assertion = Some(v.into_owned()),
            _ => {}
        }
    }
    match grant_type.as_deref() {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(oauth_error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {other}"),
            ));
        }
        None => {
            return Err(oauth_error(
                400,
                "invalid_request",
                "Missing required parameter: grant_type",
            ));
        }
    }
    assertion.filter(|a| !a.is_empty()).ok_or_else(|| {
        oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        )
    })
}

/// The assertion's claims, once it is signed by a key of the account its `iss` names
/// (an `iss` claim is guaranteed).
fn verified_claims(
    state: &State,
    assertion: &str,
) -> Result<serde_json::Map<String, Value>, Reply> {
    let Some(claims) = unverified_claims(assertion) else {
        return Err(invalid_grant(
            "Invalid JWT: the assertion is not a well-formed JWT.",
        ));
    };
    let Some(iss) = claims.get("iss").and_then(Value::as_str) else {
        return Err(invalid_grant(
            "Invalid JWT: the assertion has no iss claim.",
        ));
    };
    let kid = jsonwebtoken::decode_header(assertion)
        .ok()
        .and_then(|h| h.kid);
    let Some(keys) = state.account_keys(iss, kid.as_deref()) else {
        return Err(invalid_grant("Invalid grant: account not found"));
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let verified = keys
        .iter()
        .any(|k| jsonwebtoken::decode::<Value>(assertion, k, &validation).is_ok());
    if !verified {
        return Err(invalid_grant("Invalid JWT Signature."));
    }
    Ok(claims)
}

fn check_audience(claims: &serde_json::Map<String, Value>) -> Result<(), Reply> {
    if claims.get("aud").and_then(Value::as_str) != Some(GOOGLE_TOKEN_URI) {
        return Err(invalid_grant("Invalid JWT: Failed audience check."));
    }
    Ok(())
}

/// `iat` not in the future (beyond the skew), `exp` in the future, at most an hour apart.
fn check_lifetime(claims: &serde_json::Map<String, Value>) -> Result<(), Reply> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let iat = claims.get("iat").and_then(Value::as_u64);
    let exp = claims.get("exp").and_then(Value::as_u64);
    let timely = match (iat, exp) {
        (Some(iat), Some(exp)) => {
            iat <= now + SKEW_SECS && exp > now && exp > iat && exp - iat <= 3600
        }
        _ => false,
    };
    if !timely {
        return Err(invalid_grant(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    Ok(())
}

/// The space-separated `scope` claim: at least one scope, all Google API scopes.
fn requested_scopes(claims: &serde_json::Map<String, Value>) -> Result<Vec<String>, Reply> {
    let scopes: Vec<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "Empty or missing scope not allowed.",
        ));
    }
    if scopes
        .iter()
        .any(|s| !s.starts_with("https://www.googleapis.com/auth/"))
    {
        return Err(oauth_error(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    Ok(scopes)
}

fn unverified_claims(jwt: &str) -> Option<serde_json::Map<String, Value>> {
    let mut parts = jwt.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
