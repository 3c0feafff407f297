//! Configuration: credentials from `GOOGLE_APPLICATION_CREDENTIALS` (path or JSON), errors naming
//! what is missing or malformed, and `Debug` never showing the private key or a token.

use integrations_core::ErrorKind;
use integrations_core::provider::SheetsSink;
use integrations_sheets::sandbox::{Sandbox, test_service_account};
use integrations_sheets::{
    A1Range, ENV_BASE_URL, ENV_CREDENTIALS, ENV_SPREADSHEET_ID, ENV_TOKEN_URL, GoogleSheetsBuilder,
};
use serde_json::Value;
use std::collections::HashMap;

/// The variables `from_lookup` sees: a map, so the test never changes the process environment
/// (`set_var` while other test threads read the environment is a data race).
#[derive(Default)]
struct Env(HashMap<&'static str, String>);

impl Env {
    fn set(&mut self, name: &'static str, value: Option<&str>) {
        match value {
            Some(v) => self.0.insert(name, v.to_owned()),
            None => self.0.remove(name),
        };
    }
    fn builder(&self) -> GoogleSheetsBuilder {
        GoogleSheetsBuilder::from_lookup(|name| self.0.get(name).cloned())
    }
}

#[test]
fn from_lookup_reads_a_path_or_the_json_and_names_what_is_missing() {
    let mut env = Env::default();
    // `new()` has no credentials source; `from_lookup` always has one (at worst the metadata
    // server), so what it misses first here is the spreadsheet.
    let e = GoogleSheetsBuilder::new()
        .with_spreadsheet_id("s")
        .build_client()
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::Configuration, Some(ENV_CREDENTIALS))
    );
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some(ENV_SPREADSHEET_ID), "{e}");

    let sa = test_service_account("env@env-project.iam.gserviceaccount.com").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("sa.json");
    std::fs::write(&key_path, sa.json()).unwrap();
    env.set(ENV_CREDENTIALS, Some(key_path.to_str().unwrap()));
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some(ENV_SPREADSHEET_ID), "{e}");

    env.set(ENV_SPREADSHEET_ID, Some("sheet-from-env"));
    let client = env.builder().build_client().unwrap();
    assert_eq!(client.client_email(), Some(sa.client_email()));
    assert_eq!(client.spreadsheet_id(), "sheet-from-env");

    // The JSON itself in the variable.
    env.set(ENV_CREDENTIALS, Some(sa.json()));
    assert!(env.builder().build_client().is_ok());

    // A user credential is read by its `type`; one with a field missing is named.
    let user = r#"{"type": "authorized_user", "client_id": "x.apps.googleusercontent.com", "client_secret": "s", "refresh_token": "r"}"#;
    let user_path = dir.path().join("user.json");
    std::fs::write(&user_path, user).unwrap();
    env.set(ENV_CREDENTIALS, Some(user_path.to_str().unwrap()));
    let client = env.builder().build_client().unwrap();
    assert_eq!(client.client_email(), None);
    std::fs::write(
        &user_path,
        r#"{"type": "authorized_user", "client_id": "x", "client_secret": "s"}"#,
    )
    .unwrap();
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some(ENV_CREDENTIALS));
    assert!(e.to_string().contains("`refresh_token` is missing"), "{e}");
    // Credential types this crate does not implement are named.
    env.set(
        ENV_CREDENTIALS,
        Some(r#"{"type": "external_account", "audience": "//iam.googleapis.com/x"}"#),
    );
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some(ENV_CREDENTIALS));
    assert!(
        e.to_string()
            .contains("`external_account` are not supported"),
        "{e}"
    );

    // A key whose PEM is damaged.
    let mut broken: Value = serde_json::from_str(sa.json()).unwrap();
    let pem = broken["private_key"]
        .as_str()
        .unwrap()
        .replace("MII", "XXX");
    broken["private_key"] = Value::from(pem);
    env.set(ENV_CREDENTIALS, Some(&broken.to_string()));
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some(ENV_CREDENTIALS));
    assert!(e.to_string().contains("`private_key`"), "{e}");

    env.set(
        ENV_CREDENTIALS,
        Some(dir.path().join("missing.json").to_str().unwrap()),
    );
    let e = env.builder().build_client().unwrap_err();
    assert!(e.to_string().contains("cannot read the key file"), "{e}");

    env.set(ENV_CREDENTIALS, Some(key_path.to_str().unwrap()));
    env.set(ENV_BASE_URL, Some("ftp://example.com"));
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some("base_url"));
    env.set(ENV_BASE_URL, None);
    env.set(ENV_TOKEN_URL, Some("not a url"));
    let e = env.builder().build_client().unwrap_err();
    assert_eq!(e.field(), Some("token_url"));
}

#[test]
fn builder_errors_name_the_setting() {
    let sa = test_service_account("b@p.iam.gserviceaccount.com").unwrap();
    let e = GoogleSheetsBuilder::new()
        .with_credentials_json(sa.json())
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some(ENV_SPREADSHEET_ID));
    let e = GoogleSheetsBuilder::new()
        .with_credentials_file("/no/such/key.json")
        .with_spreadsheet_id("x")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("credentials_file"));
    let e = GoogleSheetsBuilder::new()
        .with_credentials_json("{}")
        .with_spreadsheet_id("x")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("credentials_json"));
    assert!(e.to_string().contains("not a service-account key"), "{e}");
    let e = GoogleSheetsBuilder::new()
        .with_credentials_json(sa.json())
        .with_spreadsheet_id("x")
        .with_scope(" ")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("scope"));
    let e = GoogleSheetsBuilder::new()
        .with_credentials_json(sa.json())
        .with_spreadsheet_id("x")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("runtime"), "no tokio runtime here");
}

#[tokio::test]
async fn debug_never_shows_the_private_key_or_the_token() {
    let sandbox = Sandbox::start().await.unwrap();
    sandbox.add_sheet(sandbox.spreadsheet_id(), "Orders");
    let sa = sandbox.service_account().clone();
    let json: Value = serde_json::from_str(sa.json()).unwrap();
    let pem = json["private_key"].as_str().unwrap().to_owned();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let fragments: Vec<&str> = (0..body.len() - 24)
        .step_by(200)
        .map(|i| &body[i..i + 24])
        .collect();

    let builder = sandbox.client_builder();
    let sink = builder.clone().build().unwrap();
    let client = sink.client().clone();
    // Make the client hold a live token.
    client.get(&A1Range::columns("Orders", 0, 0)).await.unwrap();
    sink.append_rows("Orders", vec![integrations_core::Row::new("k").cell(1_i64)])
        .await
        .unwrap();

    let mut shown = String::new();
    for s in [
        format!("{builder:?}"),
        format!("{builder:#?}"),
        format!("{client:?}"),
        format!("{sink:#?}"),
        format!("{:?}", sa.key().unwrap()),
        format!("{sa:?}"),
        format!("{sandbox:?}"),
        format!(
            "{:?}",
            GoogleSheetsBuilder::new().with_credentials_json(sa.json())
        ),
    ] {
        shown.push_str(&s);
        shown.push('\n');
    }
    assert!(
        shown.contains(sa.client_email()),
        "the account is shown: {shown}"
    );
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    for f in &fragments {
        assert!(!shown.contains(f), "a piece of the key leaked: {f}");
    }
    assert!(!shown.contains("ya29."), "an access token leaked: {shown}");
    assert!(!shown.contains("private_key\":"), "{shown}");
    // Errors about the key do not quote it either.
    let mut broken = json.clone();
    broken["private_key"] = Value::from(pem.replace("MII", "XXX"));
    let e = GoogleSheetsBuilder::new()
        .with_credentials_json(broken.to_string())
        .with_spreadsheet_id("x")
        .build()
        .unwrap_err();
    let text = format!("{e} {e:?}");
    for f in &fragments {
        assert!(!text.contains(f), "{text}");
    }
    sink.shutdown().await.unwrap();
    assert_eq!(sink.name(), "google-sheets");
}

#[test]
fn with_metrics_puts_every_default_policy_in_that_registry() {
    let registry = integrations_core::metrics::MetricsRegistry::new();
    let sa = test_service_account("metrics@metrics-project.iam.gserviceaccount.com").unwrap();
    let client = GoogleSheetsBuilder::new()
        .with_credentials_json(sa.json())
        .with_spreadsheet_id("sheet-1")
        .with_metrics(&registry)
        .build_client()
        .unwrap();
    let ours = registry.integration(integrations_sheets::PROVIDER);
    assert!(std::sync::Arc::ptr_eq(
        client.write_policy().metrics(),
        &ours
    ));
    assert!(std::sync::Arc::ptr_eq(
        client.read_policy().metrics(),
        &ours
    ));
}

/// One rule with the other providers: https, or plain http to loopback only, unless opted in.
/// The token URL (by default the key file's `token_uri`) is checked the same way, so a key file
/// cannot send the signed assertion over clear text to another host.
#[test]
fn plain_http_needs_loopback_or_the_opt_in() {
    let sa = test_service_account("a@b.iam.gserviceaccount.com").unwrap();
    let b = || {
        GoogleSheetsBuilder::new()
            .with_credentials_json(sa.json())
            .with_spreadsheet_id("sheet")
    };
    let e = b()
        .with_base_url("http://sheets.internal")
        .build_client()
        .unwrap_err();
    assert_eq!(e.field(), Some("base_url"));
    assert_eq!(e.kind(), ErrorKind::Configuration);
    let e = b()
        .with_token_url("http://oauth.internal/token")
        .build_client()
        .unwrap_err();
    assert_eq!(e.field(), Some("token_url"));
    b().with_base_url("http://sheets.internal")
        .with_token_url("http://oauth.internal/token")
        .with_allow_http(true)
        .build_client()
        .unwrap();
    b().with_base_url("http://127.0.0.1:9")
        .with_token_url("http://localhost:9/token")
        .build_client()
        .unwrap();
}
