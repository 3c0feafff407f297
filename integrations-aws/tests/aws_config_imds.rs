//! `AwsConfigCredentials` (feature `aws-config`) through the AWS SDK's default chain against a
//! local stand-in for EC2 instance metadata (IMDSv2: a PUT for a session token, then the role
//! name and the role's credentials, each GET carrying the token), and a request signed with the
//! credentials it yields, checked by moto (SigV4 enforced, see `.ci/moto.sh`).
//!
//! Its own test binary with a single test: `aws-config` reads the process environment and offers
//! no public way to inject another, so the test sets variables no other test can race.

#[path = "moto/support.rs"]
#[allow(unused_macros, unused_imports, dead_code)]
mod support;

mod aws_config_env;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

use integrations_aws::sqs::SqsClient;
use integrations_aws::{AwsBuilder, AwsConfigCredentials, CredentialsProvider};
use serde_json::json;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "AQAEAImdsSessionToken==";

#[tokio::test]
async fn instance_role_credentials_come_from_imdsv2_and_sign_requests_moto_accepts() {
    // With moto, the stand-in serves temporary credentials moto issued for a role (moto checks
    // the session token), so a request moto accepts proves the bridge signs with what the
    // instance role served. Without moto (outside CI) the IMDS half still runs.
    let moto = support::moto();
    let (key_id, secret, session) = match &moto {
        Some(m) => assume_admin_role(m).await,
        None => (
            "ASIAIMDSEXAMPLE".to_owned(),
            "imds-secret".to_owned(),
            "instance-session-token".to_owned(),
        ),
    };

    let imds = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/latest/api/token"))
        .and(header_exists("x-aws-ec2-metadata-token-ttl-seconds"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
                .set_body_string(TOKEN),
        )
        .expect(1..)
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path("/latest/meta-data/iam/security-credentials/"))
        .and(header("x-aws-ec2-metadata-token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_string("app-role"))
        .expect(1)
        .mount(&imds)
        .await;
    Mock::given(method("GET"))
        .and(path("/latest/meta-data/iam/security-credentials/app-role"))
        .and(header("x-aws-ec2-metadata-token", TOKEN))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "Code": "Success",
            "LastUpdated": "2026-12-02T10:00:00Z",
            "Type": "AWS-HMAC",
            "AccessKeyId": key_id,
            "SecretAccessKey": secret,
            "Token": session,
            "Expiration": "2099-01-01T00:00:00Z",
        })))
        .expect(1)
        .mount(&imds)
        .await;

    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none");
    // SAFETY: this binary's only test; no other thread reads the environment while it is set.
    unsafe {
        aws_config_env::isolate(&none, "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.uri());
    }

    let provider = AwsConfigCredentials::new();
    let c = provider.credentials().await.unwrap();
    assert_eq!(c.access_key_id(), key_id);
    assert_eq!(c.secret_access_key(), secret);
    assert_eq!(c.session_token(), Some(session.as_str()));
    assert_eq!(
        c.expires_at(),
        Some(UNIX_EPOCH + Duration::from_secs(4_070_908_800))
    );
    assert_eq!(provider.credentials().await.unwrap(), c, "cached");
    imds.verify().await;

    let Some(m) = moto else { return };
    let config = AwsBuilder::new()
        .with_region(&m.region)
        .with_base_url(&m.endpoint)
        .with_credentials(provider)
        .build()
        .unwrap();
    let sqs = SqsClient::new(&config);
    let url = sqs
        .create_queue(&support::unique("imds"), &[])
        .await
        .expect("moto accepts a request signed with the instance role's credentials");
    assert!(url.contains("imds-"), "{url}");
}

/// A signed query-protocol call to moto (`iam` or `sts`) with the emulator's IAM user key; the
/// response body.
async fn query(m: &support::Moto, service: &str, params: &[(&str, &str)]) -> String {
    // Everything but unreserved characters percent-encoded: moto re-encodes the form the way
    // Python does before checking the payload hash, and `*` left bare would not match.
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let body = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let identity = aws_credential_types::Credentials::new(
        &m.access_key_id,
        &m.secret_access_key,
        None,
        None,
        "moto",
    )
    .into();
    let signing = v4::SigningParams::builder()
        .identity(&identity)
        .region(&m.region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{}/", m.endpoint.trim_end_matches('/'));
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let signable = SignableRequest::new(
        "POST",
        &url,
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &signing).unwrap().into_parts();
    let mut req = reqwest::Client::new()
        .post(&url)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{service} {params:?}: {status} {text}");
    text
}

fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + open.len();
    let end = start + xml[start..].find('<').unwrap();
    xml[start..end].to_owned()
}

/// Creates a role allowed everything and assumes it: (access key id, secret, session token).
async fn assume_admin_role(m: &support::Moto) -> (String, String, String) {
    let role = support::unique("instance-role");
    let me = query(
        m,
        "sts",
        &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
    )
    .await;
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{}"}},"Action":"sts:AssumeRole"}}]}}"#,
        xml_field(&me, "Arn")
    );
    let admin =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let created = query(
        m,
        "iam",
        &[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", &role),
            ("AssumeRolePolicyDocument", &trust),
        ],
    )
    .await;
    let arn = xml_field(&created, "Arn");
    query(
        m,
        "iam",
        &[
            ("Action", "PutRolePolicy"),
            ("Version", "2010-05-08"),
            ("RoleName", &role),
            ("PolicyName", "admin"),
            ("PolicyDocument", admin),
        ],
    )
    .await;
    let assumed = query(
        m,
        "sts",
        &[
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", &arn),
            ("RoleSessionName", "imds"),
        ],
    )
    .await;
    (
        xml_field(&assumed, "AccessKeyId"),
        xml_field(&assumed, "SecretAccessKey"),
        xml_field(&assumed, "SessionToken"),
    )
}
