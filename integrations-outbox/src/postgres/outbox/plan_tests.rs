//! The claim's and the backlog's plans, read from `EXPLAIN (ANALYZE)` on a real database.

use super::*;
use crate::postgres::testing::TestDatabase;

/// What a claim's plan read, from `EXPLAIN (ANALYZE)`'s text: the rows that index scans of
/// the jobs table filtered out after reading them, and whether the table was read in full.
struct Reads {
    filtered_by_index_scans: u64,
    seq_scans: usize,
    /// Pages the scan of pending jobs (the `p` CTE) read (`BUFFERS`, shared hit and read).
    pending_pages: u64,
    plan: String,
}

/// The pages of a `Buffers: shared hit=… read=…` line.
fn pages(line: &str) -> u64 {
    line.split_whitespace()
        .filter_map(|w| w.strip_prefix("hit=").or_else(|| w.strip_prefix("read=")))
        .map(|n| n.parse::<u64>().expect("a page count"))
        .sum()
}

fn reads(lines: Vec<String>) -> Reads {
    let mut filtered = 0;
    let mut seq_scans = 0;
    let mut in_jobs_index_scan = false;
    for line in &lines {
        let l = line.trim_start().trim_start_matches("->  ");
        if l.contains("  (cost=") {
            in_jobs_index_scan = (l.starts_with("Index Scan") || l.starts_with("Bitmap Heap"))
                && l.contains(" on integrations_outbox_jobs");
            seq_scans += usize::from(l.starts_with("Seq Scan on integrations_outbox_jobs"));
        } else if let Some(n) = l.strip_prefix("Rows Removed by Filter: ") {
            if in_jobs_index_scan {
                filtered += n.trim().parse::<u64>().expect("a row count");
            }
        }
    }
    // The first `Buffers` line inside the `p` CTE.
    let mut cte = "";
    let mut pending_pages = None;
    for l in lines.iter().map(|l| l.trim_start()) {
        if let Some(name) = l.strip_prefix("CTE ") {
            cte = name;
        } else if cte == "p" && l.starts_with("Buffers: ") {
            pending_pages = pending_pages.or(Some(pages(l)));
        }
    }
    Reads {
        filtered_by_index_scans: filtered,
        seq_scans,
        pending_pages: pending_pages.unwrap_or(0),
        plan: lines.join("\n"),
    }
}

/// Runs a claim (then rolls it back) under `EXPLAIN (ANALYZE)`, prepared, with the plan
/// Postgres makes for one execution (`force_custom_plan`) or for any
/// (`force_generic_plan`, what a statement cached by `sqlx` may get).
async fn explain_claim(pool: &PgPool, mode: &str, kinds: Option<&str>, max: i64) -> Reads {
    explain_claim_in(pool, mode, kinds, max, Scope::ALL).await
}

/// [`explain_claim`], reading only what `scope` says.
async fn explain_claim_in(
    pool: &PgPool,
    mode: &str,
    kinds: Option<&str>,
    max: i64,
    scope: Scope,
) -> Reads {
    let mut tx = pool.begin().await.unwrap();
    let Scope { leases, floor } = scope;
    let (types, args) = match kinds {
        Some(kinds) => (
            ", text[], boolean, bigint",
            format!(", ARRAY[{kinds}], {leases}, {floor}"),
        ),
        None => (", boolean, bigint", format!(", {leases}, {floor}")),
    };
    let prepare = format!(
        "PREPARE claim_plan (bigint, bigint, text, bigint{types}) AS {}",
        claim_sql("", kinds.is_some())
    );
    sqlx::raw_sql(&format!("SET LOCAL plan_cache_mode = {mode}; {prepare}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    let lines: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN (ANALYZE, BUFFERS) EXECUTE claim_plan (100000, {max}, 'w', 200000{args})"
    ))
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    // A prepared statement outlives the transaction.
    sqlx::raw_sql("DEALLOCATE claim_plan")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    reads(lines)
}

/// A claim by kind reads that kind's due jobs on its own index, however large the backlog
/// of another kind; and no claim reads the whole table to find the rows it leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_read_only_what_they_lease() {
    let Some(db) = TestDatabase::create("claim_plan").await else {
        return;
    };
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let pool = outbox.pool();
    // A day's churn (30,000 done), a backlog of 6,000 `sheets` jobs, 5 `email` jobs due.
    sqlx::raw_sql(
        "INSERT INTO integrations_outbox_jobs (event_id, kind, idempotency_key, payload,
            state, attempts, max_attempts, available_at, created_at, updated_at)
         SELECT 'e' || g, (ARRAY['email', 'sheets', 'sns', 'metrics'])[1 + g % 4], 'k',
            '{}'::jsonb, 'done', 1, 5, g, g, g FROM generate_series(1, 30000) g
         UNION ALL SELECT 'p' || g, 'sheets', 'k', '{}', 'pending', 0, 5, 30000 + g, g, g
            FROM generate_series(1, 6000) g
         UNION ALL SELECT 'q' || g, 'email', 'k', '{}', 'pending', 0, 5, 36000 + g, g, g
            FROM generate_series(1, 5) g;
         ANALYZE integrations_outbox_jobs;",
    )
    .execute(pool)
    .await
    .unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let r = explain_claim(pool, mode, Some("'email'"), 8).await;
        assert!(
            r.filtered_by_index_scans <= 10 && r.seq_scans == 0,
            "{mode}: a claim of 5 `email` jobs filtered out {} rows, read the table {} times:\n{}",
            r.filtered_by_index_scans,
            r.seq_scans,
            r.plan
        );
        assert!(
            r.plan.contains("integrations_outbox_jobs_pending_kind"),
            "{}",
            r.plan
        );
        for (kinds, max) in [(Some("'sheets'"), 1000), (None, 1000)] {
            let r = explain_claim(pool, mode, kinds, max).await;
            assert_eq!(r.seq_scans, 0, "{mode}, {kinds:?}:\n{}", r.plan);
            // A claim that skips the expired leases never runs a scan of their index: the
            // custom plan leaves it out, the generic one gates it with a one-time filter.
            let cut = Scope {
                leases: false,
                floor: i64::MIN,
            };
            let r = explain_claim_in(pool, mode, kinds, max, cut).await;
            assert!(
                r.plan.contains("One-Time Filter")
                    && r.plan
                        .lines()
                        .filter(|l| l.contains("integrations_outbox_jobs_leased"))
                        .all(|l| l.contains("(never executed)")),
                "{mode}, {kinds:?}:\n{}",
                r.plan
            );
        }
    }
    pool.close().await;
    db.drop_database().await.unwrap();
}

/// While a backlog is worked through, a claim that skips the expired leases and starts at the
/// last claim's oldest due time reads a few pages, where a claim that reads everything steps
/// over the index entries of every job claimed since the last vacuum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_through_the_shortcuts_skips_what_was_claimed_before() {
    let Some(db) = TestDatabase::create("claim_shortcuts").await else {
        return;
    };
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let pool = outbox.pool();
    // 20,000 jobs, of which the first 19,000 were claimed and completed, no vacuum since: their
    // entries are still in the pending and leased indexes.
    sqlx::raw_sql(
        "ALTER TABLE integrations_outbox_jobs SET (autovacuum_enabled = false);
         INSERT INTO integrations_outbox_jobs (event_id, kind, idempotency_key, payload,
            state, attempts, max_attempts, available_at, created_at, updated_at)
         SELECT 'e' || g, 'email', 'k', '{}'::jsonb, 'pending', 0, 5, g, g, g
            FROM generate_series(1, 20000) g;
         UPDATE integrations_outbox_jobs SET state = 'leased', lease_expires_at = available_at + 30
            WHERE available_at <= 19000;
         UPDATE integrations_outbox_jobs SET state = 'done' WHERE available_at <= 19000;
         ANALYZE integrations_outbox_jobs;",
    )
    .execute(pool)
    .await
    .unwrap();
    let cut = Scope {
        leases: false,
        floor: 19_001,
    };
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for kinds in [Some("'email'"), None] {
            // The pending scan from the floor, against the same scan from the start, once the
            // first has marked the entries of claimed jobs dead (after that a scan skips them
            // without reading their rows, but still reads their pages).
            let from_start = Scope {
                floor: i64::MIN,
                ..cut
            };
            explain_claim_in(pool, mode, kinds, 10, from_start).await;
            let whole = explain_claim_in(pool, mode, kinds, 10, from_start).await;
            let short = explain_claim_in(pool, mode, kinds, 10, cut).await;
            let leases_read = short.plan.lines().any(|l| {
                l.contains("integrations_outbox_jobs_leased") && !l.contains("never executed")
            });
            assert!(
                whole.pending_pages > 50
                    && short.pending_pages * 5 < whole.pending_pages
                    && !leases_read,
                "{mode}, {kinds:?}: pending {} pages from the floor, {} from the start:\n{}\n\n{}",
                short.pending_pages,
                whole.pending_pages,
                short.plan,
                whole.plan
            );
        }
    }
    pool.close().await;
    db.drop_database().await.unwrap();
}

/// A claim by kind stops its scan of expired leases at the first lease of the kind not yet
/// expired, rather than walking every lease of the kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_by_kind_reads_only_the_expired_leases() {
    let Some(db) = TestDatabase::create("claim_leases").await else {
        return;
    };
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let pool = outbox.pool();
    // 19,000 `email` jobs leased until 200,000, one expired at 50,000; the claim runs at 100,000.
    sqlx::raw_sql(
        "INSERT INTO integrations_outbox_jobs (event_id, kind, idempotency_key, payload,
            state, attempts, max_attempts, available_at, lease_expires_at, lease_token,
            created_at, updated_at)
         SELECT 'e' || g, 'email', 'k', '{}'::jsonb, 'leased', 1, 5, g,
            CASE WHEN g = 1 THEN 50000 ELSE 200000 + g END, 't', g, g
            FROM generate_series(1, 19000) g;
         ANALYZE integrations_outbox_jobs;",
    )
    .execute(pool)
    .await
    .unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let r = explain_claim(pool, mode, Some("'email'"), 10).await;
        // The pages of the leases' index scan: the `Buffers` line under its node.
        let lines: Vec<&str> = r.plan.lines().map(str::trim_start).collect();
        let at = lines
            .iter()
            .position(|l| l.contains("Index Scan using integrations_outbox_jobs_leased"))
            .unwrap_or_else(|| panic!("{mode}: no scan of the leases:\n{}", r.plan));
        let read = lines[at..]
            .iter()
            .find(|l| l.starts_with("Buffers: "))
            .map_or(0, |l| pages(l));
        assert!(
            read <= 10,
            "{mode}: {read} pages for one expired lease among 19,000:\n{}",
            r.plan
        );
    }
    pool.close().await;
    db.drop_database().await.unwrap();
}

/// The backlog reads the unfinished jobs on their states' partial indexes: not the done
/// jobs, which a store accumulates until it purges them, nor the event records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_reads_only_unfinished_jobs() {
    let Some(db) = TestDatabase::create("backlog_plan").await else {
        return;
    };
    let outbox = PostgresOutbox::connect_with(db.options()).await.unwrap();
    let pool = outbox.pool();
    // A day's churn (30,000 done jobs and their events), 7 pending, 3 leased, 2 dead.
    sqlx::raw_sql(
        "INSERT INTO integrations_outbox_events (event_id, recorded_at)
            SELECT 'e' || g, g FROM generate_series(1, 30000) g;
         INSERT INTO integrations_outbox_jobs (event_id, kind, idempotency_key, payload,
            state, attempts, max_attempts, available_at, created_at, updated_at)
         SELECT 'e' || g, 'email', 'k', '{}'::jsonb, 'done', 1, 5, g, g, g
            FROM generate_series(1, 30000) g
         UNION ALL SELECT 'p' || g, 'email', 'k', '{}', 'pending', 0, 5, 40000 + g, g, g
            FROM generate_series(1, 7) g
         UNION ALL SELECT 'l' || g, 'email', 'k', '{}', 'leased', 1, 5, g, g, g
            FROM generate_series(1, 3) g
         UNION ALL SELECT 'd' || g, 'email', 'k', '{}', 'dead', 5, 5, g, g, g
            FROM generate_series(1, 2) g;
         ANALYZE integrations_outbox_jobs; ANALYZE integrations_outbox_events;",
    )
    .execute(pool)
    .await
    .unwrap();
    let b = outbox.backlog().await.unwrap();
    assert_eq!((b.pending, b.leased, b.dead), (7, 3, 2));
    assert_eq!(b.oldest_pending_at, Some(from_millis(40_001)));
    let lines: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN (ANALYZE) {BACKLOG}"))
        .fetch_all(pool)
        .await
        .unwrap();
    let plan = lines.join("\n");
    let nodes: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_start().trim_start_matches("->  "))
        .filter(|l| l.contains("  (cost=") && l.contains(" on integrations_outbox_"))
        .collect();
    let mut indexes = 0;
    for node in nodes {
        assert!(
            !node.starts_with("Seq Scan") && !node.contains("integrations_outbox_events"),
            "{node} in\n{plan}"
        );
        // `Index (Only) Scan using <index> on …`, `Bitmap Index Scan on <index>`; a bitmap
        // heap scan reads the rows its bitmap index scan found.
        let index = node
            .split_once(" using ")
            .or_else(|| node.split_once("Bitmap Index Scan on "))
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if let Some(index) = index {
            indexes += 1;
            assert!(
                ["pending", "leased", "dead"]
                    .iter()
                    .any(|s| index.starts_with(&format!("integrations_outbox_jobs_{s}"))),
                "{node} in\n{plan}"
            );
        } else {
            assert!(node.starts_with("Bitmap Heap Scan"), "{node} in\n{plan}");
        }
    }
    assert!(indexes >= 4, "{plan}");
    pool.close().await;
    db.drop_database().await.unwrap();
}
