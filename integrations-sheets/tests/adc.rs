//! Application default credentials against local stand-ins: the metadata server (GCE, GKE,
//! Cloud Run) and the OAuth token endpoint for `authorized_user` credentials, with the exact
//! requests Google's servers expect, and the order Google's libraries choose a source in.
//! Variables go through `from_lookup`, never the process environment.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use integrations_core::{ErrorKind, Policy};
use integrations_sheets::sandbox::test_service_account;
use integrations_sheets::{
    A1Range, AuthorizedUserTokens, ENV_CREDENTIALS, ENV_METADATA_HOST, ENV_SPREADSHEET_ID,
    ENV_TOKEN_URL, FetchedToken, GoogleSheetsBuilder, GoogleSheetsClient, MetadataServerTokens,
    TokenProvider, TokenRequest,
};
use serde_json::json;
use wiremock::matchers::{body_string, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SCOPE: &str = "https://www.googleapis.com/auth/spreadsheets";
const SHEET: &str = "sheet-1";

fn no_retry() -> Policy {
    Policy::builder("google-sheets").build()
}

/// A builder from these variables, the API at `api`, no token retries.
fn builder(vars: &[(&str, String)], api: &MockServer) -> GoogleSheetsBuilder {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .chain([(ENV_SPREADSHEET_ID.to_owned(), SHEET.to_owned())])
        .collect();
    GoogleSheetsBuilder::from_lookup(|k| map.get(k).cloned())
        .with_base_url(api.uri())
        .with_token_policy(no_retry())
}

/// The values API answering one `values.get` for callers presenting `token`.
async fn api_expecting(token: &str) -> MockServer {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex(format!(
            "^/v4/spreadsheets/{SHEET}/values/Orders"
        )))
        .and(header("authorization", format!("Bearer {token}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "range": "Orders!A1:A1", "majorDimension": "ROWS", "values": [["ok"]]
        })))
        .mount(&api)
        .await;
    api
}

async fn read(client: &GoogleSheetsClient) -> integrations_core::Result<String> {
    let v = client.get(&A1Range::columns("Orders", 0, 0)).await?;
    Ok(v.range)
}

fn host(server: &MockServer) -> String {
    server.uri().trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn metadata_server_is_used_last_with_the_metadata_flavor_header_and_comma_scopes() {
    let metadata = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/computeMetadata/v1/instance/service-accounts/default/token",
        ))
        .and(header("metadata-flavor", "Google"))
        .and(query_param("scopes", format!("{SCOPE},openid")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Metadata-Flavor", "Google")
                .set_body_json(json!({
                    "access_token": "ya29.from-metadata",
                    "expires_in": 3599,
                    "token_type": "Bearer"
                })),
        )
        .expect(1)
        .mount(&metadata)
        .await;
    let api = api_expecting("ya29.from-metadata").await;
    let home = tempfile::tempdir().unwrap();
    let client = builder(
        &[
            ("HOME", home.path().display().to_string()),
            (ENV_METADATA_HOST, host(&metadata)),
        ],
        &api,
    )
    .with_scope(format!("{SCOPE} openid"))
    .build_client()
    .unwrap();
    assert_eq!(client.client_email(), None);
    assert_eq!(read(&client).await.unwrap(), "Orders!A1:A1");
    // Cached: the second call fetches no token (`expect(1)` is checked on drop).
    read(&client).await.unwrap();
    assert_eq!(client.token_exchanges(), 1);
}

#[tokio::test]
async fn an_answer_without_metadata_flavor_is_not_from_a_metadata_server() {
    let impostor = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.impostor", "expires_in": 3599
        })))
        .mount(&impostor)
        .await;
    let http: integrations_core::http::HttpClient = reqwest::Client::new().into();
    let policy = no_retry();
    let e = MetadataServerTokens::with_host(host(&impostor))
        .fetch_token(&TokenRequest::new(SCOPE, &http, &policy))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a metadata server"), "{e}");
}

#[tokio::test]
async fn with_no_source_at_all_the_error_names_every_place_looked() {
    let home = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let api = MockServer::start().await;
    let client = builder(
        &[
            ("HOME", home.path().display().to_string()),
            (ENV_METADATA_HOST, "127.0.0.1:1".to_owned()),
        ],
        &api,
    )
    .build_client()
    .unwrap();
    let e = read(&client).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let m = e.to_string();
    assert!(m.contains("metadata server at 127.0.0.1:1"), "{m}");
    assert!(
        m.contains("GOOGLE_APPLICATION_CREDENTIALS is not set"),
        "{m}"
    );
    let well_known = home
        .path()
        .join(".config/gcloud/application_default_credentials.json");
    assert!(m.contains(&well_known.display().to_string()), "{m}");
}

fn write_user(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("application_default_credentials.json"),
        json!({
            "type": "authorized_user",
            "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
            "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
            "refresh_token": "1//0gREFRESHTOKENsecret",
            "quota_project_id": "shop-analytics"
        })
        .to_string(),
    )
    .unwrap();
}

#[tokio::test]
async fn gclouds_well_known_file_comes_before_the_metadata_server_with_the_refresh_grant() {
    let oauth = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "grant_type=refresh_token\
             &client_id=764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com\
             &client_secret=d-FL95Q19q7MQmFpd7hHD0Ty\
             &refresh_token=1%2F%2F0gREFRESHTOKENsecret",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "ya29.user", "expires_in": 3599, "scope": SCOPE, "token_type": "Bearer"
        })))
        .expect(1)
        .mount(&oauth)
        .await;
    let api = api_expecting("ya29.user").await;
    let home = tempfile::tempdir().unwrap();
    write_user(&home.path().join(".config/gcloud"));
    let client = builder(
        &[
            ("HOME", home.path().display().to_string()),
            (ENV_TOKEN_URL, format!("{}/token", oauth.uri())),
            // Never asked: the file comes first.
            (ENV_METADATA_HOST, "127.0.0.1:1".to_owned()),
        ],
        &api,
    )
    .build_client()
    .unwrap();
    read(&client).await.unwrap();
    let shown = format!("{client:?}");
    assert!(
        !shown.contains("d-FL95Q19q7MQmFpd7hHD0Ty") && !shown.contains("REFRESHTOKEN"),
        "{shown}"
    );
    assert!(!shown.contains("ya29."), "{shown}");
}

#[tokio::test]
async fn a_refused_refresh_token_is_unauthenticated() {
    let oauth = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant", "error_description": "Token has been expired or revoked."
        })))
        .mount(&oauth)
        .await;
    let http: integrations_core::http::HttpClient = reqwest::Client::new().into();
    let policy = no_retry();
    let e = AuthorizedUserTokens::new("id", "secret", "refresh")
        .with_token_url(format!("{}/token", oauth.uri()))
        .fetch_token(&TokenRequest::new(SCOPE, &http, &policy))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{e}");
}

#[test]
fn the_order_is_the_variable_then_cloudsdk_config_then_home() {
    let sa = test_service_account("adc@p.iam.gserviceaccount.com").unwrap();
    let dirs = tempfile::tempdir().unwrap();
    let home = dirs.path().join("home");
    let sdk = dirs.path().join("sdk");
    write_user(&home.join(".config/gcloud"));
    write_user(&sdk);
    let key = dirs.path().join("sa.json");
    std::fs::write(&key, sa.json()).unwrap();
    let build = |vars: &[(&str, &Path)]| {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.display().to_string()))
            .chain([(ENV_SPREADSHEET_ID.to_owned(), SHEET.to_owned())])
            .collect();
        GoogleSheetsBuilder::from_lookup(|k| map.get(k).cloned())
            .build_client()
            .unwrap()
    };
    // The variable wins over both files.
    let c = build(&[
        (ENV_CREDENTIALS, &key),
        ("CLOUDSDK_CONFIG", &sdk),
        ("HOME", &home),
    ]);
    assert_eq!(c.client_email(), Some(sa.client_email()));
    // Then a file: user credentials carry no account email.
    let c = build(&[("CLOUDSDK_CONFIG", &sdk), ("HOME", &home)]);
    assert_eq!(c.client_email(), None);
    assert!(format!("{c:?}").contains("AuthorizedUserTokens"), "{c:?}");
    // A damaged well-known file is reported by its path, not skipped.
    std::fs::write(sdk.join("application_default_credentials.json"), "{").unwrap();
    let map: HashMap<String, String> = [
        ("CLOUDSDK_CONFIG".to_owned(), sdk.display().to_string()),
        (ENV_SPREADSHEET_ID.to_owned(), SHEET.to_owned()),
    ]
    .into();
    let e = GoogleSheetsBuilder::from_lookup(|k| map.get(k).cloned())
        .build_client()
        .unwrap_err();
    assert!(
        e.field()
            .is_some_and(|f| f.ends_with("application_default_credentials.json")),
        "{e}"
    );
}

#[test]
fn tokens_and_user_secrets_stay_out_of_debug() {
    let t = FetchedToken::new("ya29.secret-token", Some(Duration::from_secs(3599)));
    let d = format!("{t:?}");
    assert!(!d.contains("ya29"), "{d}");
    let u = AuthorizedUserTokens::new("client.apps", "client-secret-x", "1//refresh-y");
    let d = format!("{u:?}");
    assert!(d.contains("client.apps"), "{d}");
    assert!(
        !d.contains("client-secret-x") && !d.contains("refresh-y"),
        "{d}"
    );
}
