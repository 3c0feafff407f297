use super::*;

#[test]
fn cert_url_host_check() {
    for ok in [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
    ] {
        assert!(check_cert_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        "http://sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/x.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.txt",
        "https://sns.amazonaws.com/x.pem",
        "https://sns.a.b.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:8443/x.pem",
        "https://user@sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem?y=1",
        "not a url",
    ] {
        assert!(check_cert_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn cert_urls_need_a_real_region_and_the_right_domain() {
    for ok in [
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-a.pem",
        "https://sns.eu-central-2.amazonaws.com/SimpleNotificationService-a.pem",
        "https://sns.ap-southeast-5.amazonaws.com/SimpleNotificationService-a.pem",
        "https://sns.il-central-1.amazonaws.com/SimpleNotificationService-a.pem",
        "https://sns.us-isob-east-1.amazonaws.com/SimpleNotificationService-a.pem",
        "https://sns.cn-northwest-1.amazonaws.com.cn/SimpleNotificationService-a.pem",
    ] {
        assert!(check_cert_url(ok).is_ok(), "{ok}");
    }
    for bad in [
        // S3 virtual-host endpoints serve anyone's bucket `sns`.
        "https://sns.s3-external-1.amazonaws.com/x.pem",
        "https://sns.s3.amazonaws.com/x.pem",
        "https://sns.s3-us-west-2.amazonaws.com/x.pem",
        "https://sns.s3.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1a.amazonaws.com/x.pem",
        "https://sns.us-middle-1.amazonaws.com/x.pem",
        "https://sns.usa-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-x.amazonaws.com/x.pem",
        "https://sns.us-gov-east.amazonaws.com/x.pem",
        "https://sns.cn-north-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com.cn/x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem#frag",
        "https://[::1]/x.pem",
    ] {
        assert!(check_cert_url(bad).is_err(), "{bad}");
    }
    assert_eq!(
        topic_region("arn:aws:sns:us-east-1:123456789012:orders"),
        Some("us-east-1")
    );
    assert_eq!(
        topic_region("arn:aws-cn:sns:cn-north-1:123456789012:t"),
        Some("cn-north-1")
    );
    for bad in [
        "",
        "orders",
        "arn:aws:sqs:us-east-1:1:q",
        "arn:aws:sns::1:t",
    ] {
        assert_eq!(topic_region(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn fetches_follow_no_redirect_and_stop_over_the_limit() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cert.pem"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/elsewhere.pem", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/elsewhere.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string("PEM"))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/small.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_string("PEM"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/big.pem"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 100_000]))
        .mount(&server)
        .await;
    // The fetcher's own policy, on plain http for the test.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| Url::parse(&format!("{}{p}", server.uri())).unwrap();
    let e = fetch_capped(&client, &url("/cert.pem"), MAX_CERT_BYTES)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("redirects are not followed"), "{e}");
    let e = fetch_capped(&client, &url("/big.pem"), MAX_CERT_BYTES)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    assert_eq!(
        fetch_capped(&client, &url("/small.pem"), 3).await.unwrap(),
        b"PEM"
    );
    // https only: a plain http URL is never requested.
    let before = server.received_requests().await.unwrap().len();
    assert!(
        HttpsCertificateFetcher::new()
            .fetch(&url("/small.pem"))
            .await
            .is_err()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}

/// A body without a length (chunked) is cut as soon as it passes the limit, not read whole.
#[tokio::test]
async fn chunked_bodies_are_capped_while_streaming() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        sock.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let chunk = vec![b'x'; 16 * 1024];
        let mut sent = 0usize;
        // Up to 64 MiB, unless the client hangs up first.
        for _ in 0..4096 {
            let head = format!("{:x}\r\n", chunk.len());
            if sock.write_all(head.as_bytes()).await.is_err()
                || sock.write_all(&chunk).await.is_err()
                || sock.write_all(b"\r\n").await.is_err()
            {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let client = reqwest::Client::new();
    let url = Url::parse(&format!("http://{addr}/cert.pem")).unwrap();
    let e = fetch_capped(&client, &url, MAX_CERT_BYTES)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    let sent = server.await.unwrap();
    assert!(
        sent < 8 * 1024 * 1024,
        "stopped reading early, {sent} bytes sent"
    );
}

#[test]
fn region_labels() {
    for ok in [
        "us-east-1",
        "cn-north-1",
        "us-gov-west-1",
        "eu-central-2",
        "ap-southeast-5",
        "il-central-1",
        "us-iso-east-1",
        "us-isob-east-1",
        "mx-central-1",
    ] {
        assert!(is_region(ok), "{ok}");
    }
    for bad in [
        "",
        "s3-external-1",
        "s3",
        "us-east",
        "us-east-1-1",
        "use-east-1",
        "us-gov-1",
        "us-isoxx-east-1",
        "us-east-123",
        "us--east-1",
        "u1-east-1",
    ] {
        assert!(!is_region(bad), "{bad}");
    }
}

#[test]
fn timestamps() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(
        parse_timestamp("2012-05-02T00:54:06.655Z"),
        Some(1_335_920_046)
    );
    assert_eq!(parse_timestamp("2024-02-29T12:00:00Z"), Some(1_709_208_000));
    assert_eq!(parse_timestamp("2012-13-02T00:54:06Z"), None);
    assert_eq!(parse_timestamp("yesterday"), None);
}

#[test]
fn absurd_years_do_not_overflow() {
    assert_eq!(
        parse_timestamp("99999-01-01T00:00:00Z"),
        Some(3_093_496_444_800)
    );
    assert_eq!(
        parse_timestamp("-1-03-01T00:00:00Z"),
        None,
        "`-1-03-01` does not split into year, month, day"
    );
    assert_eq!(
        parse_timestamp("0000-01-01T00:00:00Z"),
        Some(-62_167_219_200)
    );
    for extreme in [
        "9223372036854775807-12-31T23:59:59Z",
        "9223372036854775807-01-01T00:00:00Z",
        "-9223372036854775808-01-01T00:00:00Z",
        "922337203685477-12-31T23:59:59Z",
        "-922337203685477-01-01T00:00:00Z",
    ] {
        // No panic; out-of-range years are not timestamps.
        let _ = parse_timestamp(extreme);
    }
    assert_eq!(parse_timestamp("9223372036854775807-12-31T23:59:59Z"), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    #[test]
    fn timestamps_never_panic(
        y in proptest::prelude::any::<i64>(),
        m in 1i64..=12,
        d in 1i64..=31,
        rest in "[0-9:.TZ-]{0,24}",
    ) {
        let _ = parse_timestamp(&format!("{y:04}-{m:02}-{d:02}T00:00:00Z"));
        let _ = parse_timestamp(&rest);
    }

    #[test]
    fn cert_url_check_never_panics(s in proptest::prelude::any::<String>()) {
        let _ = check_cert_url(&s);
    }
}
