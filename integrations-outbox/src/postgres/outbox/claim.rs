//! A claim of the Postgres outbox: its one statement ([`claim_sql`]), and what it may leave
//! unread while a backlog keeps the claims full ([`Shortcuts`]). A child of `outbox`, split out
//! so that the store's file holds the store.

use std::time::Duration;

use super::super::rows::cols;

/// Claims in one statement: the due pending jobs and the expired leases, each read in index
/// order and locked with `SKIP LOCKED` (rows another claimer holds are passed over, not waited
/// for), merged oldest first, and leased with a fresh random token. Expired leases with no
/// attempts left are returned as `exhausted` for the caller to dead-letter.
///
/// With `by_kind`, only jobs whose kind is in `$5` (a `text[]`): one index-ordered scan per kind
/// and state (`LATERAL`, on the `(kind, due time, id)` partial indexes), each stopping at `$2`, so
/// a backlog of other kinds is never read. The kind is bounded as a range of that index
/// (`kind >= k AND (kind, due) <= (k, now)`, which is `kind = k AND due <= now`), not by
/// `kind = k`: with the equality, Postgres judged the `(due time, id)` index as well ordered
/// and cheaper, and walked every due job of every kind to find the few of this one (the
/// reference service on Postgres: 3.7 ms a claim, 6,452 rows filtered out of one; `docs/scaling.md`).
///
/// The `UPDATE` finds the rows by `id = ANY(…)`, an index lookup whatever the planner thinks
/// `due` holds: joined to `due` alone, a generic plan's estimate (a few hundred rows) made it
/// hash the whole table, read in full on every claim.
///
/// Two more parameters narrow a claim while a backlog is worked through (see [`Shortcuts`]):
/// the expired leases are read only when `$5` (`$6` with `by_kind`) is true, a one-time filter,
/// so a claim that skips them does not touch their index at all; and the pending jobs are read
/// from the due time `$6` (`$7`) on, `i64::MIN` for all of them.
pub(super) fn claim_sql(marks: &str, by_kind: bool) -> String {
    let (scan_leases, floor) = if by_kind { ("$6", "$7") } else { ("$5", "$6") };
    let scan = |state: &str, at: &str, leased: bool| {
        let (range, order) = match (by_kind, leased) {
            // The leases by an equality: with the row comparison as its upper bound, a scan
            // did not stop at the first lease not yet expired but walked every entry of the
            // kind, live or dead (19,000 unexpired leases: 95 pages against 2).
            (true, true) => (
                format!("kind = k.kind AND {at} <= $1"),
                format!("kind, {at}, id"),
            ),
            (true, false) => (
                format!("(kind, {at}) >= (k.kind, {floor}) AND (kind, {at}) <= (k.kind, $1)"),
                format!("kind, {at}, id"),
            ),
            (false, true) => (format!("{at} <= $1"), format!("{at}, id")),
            (false, false) => (
                format!("{at} >= {floor} AND {at} <= $1"),
                format!("{at}, id"),
            ),
        };
        let gate = if leased {
            format!("{scan_leases}::boolean AND ")
        } else {
            String::new()
        };
        let select = format!(
            "SELECT id, attempts, max_attempts, {at} AS at, {leased} AS leased
            FROM integrations_outbox_jobs WHERE {gate}state = '{state}' AND {range}
            ORDER BY {order} LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        if by_kind {
            format!("SELECT x.* FROM unnest($5::text[]) AS k(kind) CROSS JOIN LATERAL ({select}) x")
        } else {
            select
        }
    };
    format!(
        "WITH p AS (
            {pending}
        ), l AS (
            {leased}
        ), due AS (
            SELECT * FROM (SELECT * FROM p UNION ALL SELECT * FROM l) d ORDER BY at, id LIMIT $2
        ), claimed AS (
            UPDATE integrations_outbox_jobs j SET state = 'leased', attempts = j.attempts + 1,
                lease_token = replace(gen_random_uuid()::text, '-', ''), leased_by = $3,
                lease_expires_at = $4, updated_at = $1
            FROM due WHERE j.id = ANY(ARRAY(SELECT id FROM due)) AND j.id = due.id
                AND NOT (due.leased AND due.attempts >= due.max_attempts)
            RETURNING due.at AS due_at, {cols}
        )
        SELECT (SELECT array_agg(id) FROM due WHERE leased AND attempts >= max_attempts)
                AS exhausted,
            c.*
        FROM (SELECT 1) one LEFT JOIN claimed c ON true WHERE true {marks}",
        pending = scan("pending", "available_at", false),
        leased = scan("leased", "lease_expires_at", true),
        cols = cols("j.")
    )
}

/// How long a claimer working through a backlog goes between two claims that read everything.
pub(crate) const FULL_SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// What a claim may leave unread while a backlog is worked through.
///
/// A claim's scan of the pending jobs starts at the oldest key and steps over the index entry
/// of every job claimed since the table's indexes were last vacuumed (Postgres skips an entry
/// it has marked dead without comparing its key, so it does not stop early). Its scan of the
/// expired leases steps over the entries of completed leases whose expiry has passed, and a
/// claim by kind used to walk every lease entry of the kind (see [`claim_sql`]). Between two
/// autovacuums of a busy outbox that is hundreds of thousands of entries: after a 300,000-job
/// drain, 4,070 pages and 18 ms for one claim (`EXPLAIN (ANALYZE, BUFFERS)`, `docs/scaling.md`).
///
/// So while the claims of the same kinds come back full, and for at most
/// [`FULL_SCAN_INTERVAL`] after the last claim that read everything, a claim takes two
/// shortcuts:
/// - it skips the expired leases. They are rare (a worker that died or overran its lease), and
///   a second more before one is taken again does not matter next to a lease's length;
/// - it reads the pending jobs from the oldest due time the last claim took on. Every pending
///   job before that was, when the last claim read it, claimed or locked by another claimer;
///   one that is pending there again (a claimer's transaction rolled back) or came in late (a
///   caller's transaction committed jobs recorded before others that were claimed meanwhile,
///   or another machine's clock is behind) waits for the next claim that reads everything,
///   at most a second.
///
/// A claim that took a shortcut and finds too few jobs reads everything before it answers (a
/// second statement), and the claim after a short one reads everything at once: a claim never
/// comes back short while a job is there to take, as before.
#[derive(Default)]
pub(super) struct Shortcuts {
    /// By the kinds claimed (`None`: any kind).
    by_kinds: std::sync::Mutex<std::collections::HashMap<Option<Vec<String>>, Pace>>,
}

/// How the last claims of some kinds went.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// When a claim last read everything.
    full_scan: std::time::Instant,
    /// How many claims have read everything: a claim through the shortcuts that ends after a
    /// later full one does not overwrite what that one found.
    generation: u64,
    /// Whether the last claim came back full.
    full: bool,
    /// The oldest due time the last full claim took.
    floor: i64,
}

/// What one claim statement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scope {
    /// Whether it reads the expired leases.
    pub(super) leases: bool,
    /// The due time it reads the pending jobs from.
    pub(super) floor: i64,
}

impl Scope {
    /// Everything.
    pub(super) const ALL: Scope = Scope {
        leases: true,
        floor: i64::MIN,
    };
}

impl Shortcuts {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Option<Vec<String>>, Pace>> {
        self.by_kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What a claim of `kinds` reads now, and the generation it reads it in (for
    /// [`claimed`](Shortcuts::claimed)).
    pub(super) fn scope(&self, kinds: Option<&[&str]>) -> (Scope, u64) {
        let key = kinds.map(|k| k.iter().map(|s| (*s).to_owned()).collect());
        match self.lock().get(&key) {
            Some(p) if p.full && p.full_scan.elapsed() < FULL_SCAN_INTERVAL => (
                Scope {
                    leases: false,
                    floor: p.floor,
                },
                p.generation,
            ),
            Some(p) => (Scope::ALL, p.generation),
            None => (Scope::ALL, 0),
        }
    }

    /// A claim of `kinds` begun in `generation` ended: it read everything if `read_all`, and
    /// came back `full`, the oldest due time it took being `oldest`.
    pub(super) fn claimed(
        &self,
        kinds: Option<&[&str]>,
        generation: u64,
        read_all: bool,
        full: bool,
        oldest: Option<i64>,
    ) {
        let key = kinds.map(|k| k.iter().map(|s| (*s).to_owned()).collect());
        let now = std::time::Instant::now();
        let mut map = self.lock();
        let pace = map.entry(key).or_insert(Pace {
            full_scan: now,
            generation: 0,
            full: false,
            floor: i64::MIN,
        });
        if read_all {
            pace.full_scan = now;
            pace.generation += 1;
        } else if pace.generation != generation {
            // A full claim ended since this one began: its floor stands.
            return;
        }
        pace.full = full;
        pace.floor = match (full, oldest) {
            (true, Some(oldest)) => oldest,
            _ => i64::MIN,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_take_shortcuts_only_while_full_and_within_the_interval() {
        let cuts = Shortcuts::default();
        let kinds: &[&str] = &["email"];
        let scope = |cuts: &Shortcuts| cuts.scope(Some(kinds)).0;
        assert_eq!(
            cuts.scope(None).0,
            Scope::ALL,
            "the first claim reads everything"
        );
        assert_eq!(scope(&cuts), Scope::ALL);
        let (_, g) = cuts.scope(Some(kinds));
        cuts.claimed(Some(kinds), g, true, true, Some(500));
        let cut = Scope {
            leases: false,
            floor: 500,
        };
        assert_eq!(scope(&cuts), cut, "full, and read everything just now");
        assert_eq!(cuts.scope(None).0, Scope::ALL, "other kinds keep their own");
        assert_eq!(cuts.scope(Some(&["email", "sms"])).0, Scope::ALL);
        // A full claim through the shortcuts moves the floor on, not the interval.
        let (_, g) = cuts.scope(Some(kinds));
        cuts.claimed(Some(kinds), g, false, true, Some(700));
        assert_eq!(scope(&cuts).floor, 700);
        cuts.claimed(Some(kinds), g, false, false, Some(800));
        assert_eq!(scope(&cuts), Scope::ALL, "a short claim: all next time");
        let (_, g) = cuts.scope(Some(kinds));
        cuts.claimed(Some(kinds), g, true, true, Some(900));
        assert_eq!(scope(&cuts).floor, 900);
        // Everything read longer ago than the interval: all again, however full the claims;
        // and a claim through the shortcuts does not restart the interval.
        let long_ago = std::time::Instant::now()
            .checked_sub(FULL_SCAN_INTERVAL * 2)
            .expect("a monotonic clock two seconds past its origin");
        cuts.lock()
            .get_mut(&Some(vec!["email".to_owned()]))
            .expect("known")
            .full_scan = long_ago;
        assert_eq!(scope(&cuts), Scope::ALL);
        let (_, g) = cuts.scope(Some(kinds));
        cuts.claimed(Some(kinds), g, false, true, Some(1000));
        assert_eq!(scope(&cuts), Scope::ALL);
        cuts.claimed(Some(kinds), g, true, true, Some(1100));
        assert_eq!(scope(&cuts).floor, 1100);
    }

    /// A claim through the shortcuts that ends after a full claim begun later does not put
    /// back a floor past the jobs the full claim found (each would wait another interval).
    #[test]
    fn a_full_claims_floor_stands_against_a_slower_shortcut() {
        let cuts = Shortcuts::default();
        let (_, g) = cuts.scope(None);
        cuts.claimed(None, g, true, true, Some(100));
        let (slow, slow_generation) = cuts.scope(None);
        assert_eq!(slow.floor, 100);
        // The full claim finds late jobs from 50 on.
        cuts.claimed(None, slow_generation, true, true, Some(50));
        // The slow claim through the shortcuts ends now.
        cuts.claimed(None, slow_generation, false, true, Some(120));
        assert_eq!(cuts.scope(None).0.floor, 50);
    }
}
