//! The latency a call records: on its events, in its histograms and in the window.

use super::*;

/// The call's latency on its "call succeeded" event is the one the histograms got, in whole
/// microseconds (nanoseconds / 1000, truncated).
#[tokio::test]
async fn the_events_latency_is_the_histograms_in_microseconds() {
    let capture = integrations_testkit::TracingCapture::start();
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).build();
    policy
        .call("op", |_| async {
            std::thread::sleep(3 * MS); // real time: quanta times the call
            Ok(1)
        })
        .await
        .unwrap();
    let event_us: u64 = capture
        .events()
        .iter()
        .find(|e| e.message == "call succeeded")
        .and_then(|e| e.field("latency_us"))
        .expect("a call succeeded event")
        .parse()
        .unwrap();
    let s = registry.snapshot();
    let op = &s.get("stripe").unwrap().operations[0];
    let hist_us = (op.latency_sum_ms * 1000.0).round() as u64;
    assert!(event_us >= 3_000, "{event_us}");
    assert_eq!(event_us, hist_us);
}

/// A call that read tokio's clock at its start is placed in the latency window at its end
/// (start + latency), not at its start: here the start is in the window's first step, the end
/// in its second, and once the first step has left the window the call is still counted.
#[tokio::test(start_paused = true)]
async fn the_window_counts_a_call_at_its_end() {
    let registry = MetricsRegistry::new();
    let policy = builder(&registry).deadline(10 * SEC).build();
    // Creates the operation's window now: its first step is [now, now + 30 s).
    policy.call("op", |_| async { Ok(0) }).await.unwrap();
    tokio::time::advance(30 * SEC - 2 * MS).await;
    policy
        .call("op", |_| async {
            // Real time (the latency), not the paused clock: the call ends 5 ms later.
            std::thread::sleep(5 * MS);
            Ok(1)
        })
        .await
        .unwrap();
    // Step 10: the window holds steps 1..=10 only.
    tokio::time::advance(280 * SEC).await;
    let s = registry.snapshot();
    let s = s.get("stripe").unwrap();
    assert_eq!((s.latency_count, s.window_count), (2, 1));
}
