use std::sync::Arc;
use std::time::Duration;

use integrations_aws::dynamodb::{DynamoDb, DynamoDedupStore};
use integrations_core::ErrorKind;
use integrations_core::clock::FixedClock;
use integrations_core::webhook::{DedupOutcome, DedupStore};
use serde_json::json;

use crate::support::{moto_or_skip, unique};

#[tokio::test]
async fn dedup_store_inserts_once_until_expiry() {
    let m = moto_or_skip!();
    let clock = FixedClock::from_unix(1_800_000_000);
    let table = unique("dedup");
    let store = DynamoDedupStore::new(&m.config(), &table).with_clock(clock.clone());
    store.create_table().await.unwrap();
    store
        .create_table()
        .await
        .expect("idempotent, TTL already on");

    let ttl = Duration::from_secs(3600);
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::New
    );
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::Duplicate
    );
    assert_eq!(
        store.insert_if_absent("evt_2", ttl).await.unwrap(),
        DedupOutcome::New
    );
    clock.advance(Duration::from_secs(3599));
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::Duplicate
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        store.insert_if_absent("evt_1", ttl).await.unwrap(),
        DedupOutcome::New,
        "expired"
    );
    assert_eq!(
        store.insert_if_absent("", ttl).await.unwrap_err().field(),
        Some("key")
    );

    // The TTL attribute holds the expiry in unix seconds.
    let db = DynamoDb::new(&m.config());
    let key = json!({"pk": {"S": "evt_1"}});
    let item = db
        .get_item(&table, key.as_object().unwrap().clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item["expires_at"], json!({"N": "1800007200"}));
    let missing = db
        .call(
            "GetItem",
            &json!({"TableName": unique("absent"), "Key": key}),
        )
        .await;
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn dedup_store_concurrent_inserts_have_one_winner() {
    let m = moto_or_skip!();
    let store = Arc::new(DynamoDedupStore::new(&m.config(), unique("dedup")));
    store.create_table().await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                s.insert_if_absent("evt_race", Duration::from_secs(60))
                    .await
            })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == DedupOutcome::New {
            new += 1;
        }
    }
    assert_eq!(new, 1);
}

/// What the policy's retry of an applied conditional write sends — the same request, the same
/// token — is recognised as the call's own write by a real condition check; another call's is a
/// failed condition; an update recognises its own the same way.
#[tokio::test]
async fn conditional_write_recognises_its_own_earlier_attempt() {
    use integrations_aws::dynamodb::{ConditionalWrite, WRITE_TOKEN_ATTRIBUTE, WriteToken};
    let m = moto_or_skip!();
    let table = unique("cond");
    let store = DynamoDedupStore::new(&m.config(), &table);
    store.create_table().await.unwrap();
    let db = DynamoDb::new(&m.config());
    let put = |t: &WriteToken| {
        json!({
            "TableName": table,
            "Item": { "pk": {"S": "k"}, "n": {"N": "1"}, WRITE_TOKEN_ATTRIBUTE: t.attribute_value() },
            "ConditionExpression": "attribute_not_exists(pk)",
        })
    };
    let mine = WriteToken::random();
    for attempt in 0..2 {
        assert_eq!(
            db.conditional_write("PutItem", &put(&mine), &mine)
                .await
                .unwrap(),
            ConditionalWrite::Applied { attributes: None },
            "attempt {attempt}"
        );
    }
    let other = WriteToken::random();
    let ConditionalWrite::ConditionFailed(Some(old)) = db
        .conditional_write("PutItem", &put(&other), &other)
        .await
        .unwrap()
    else {
        panic!("another call's put is a failed condition with the old item");
    };
    assert!(mine.wrote(&old) && !other.wrote(&old));

    let update = |t: &WriteToken| {
        json!({
            "TableName": table,
            "Key": { "pk": {"S": "k"} },
            "UpdateExpression": "SET n = :two, #wtok = :wtok",
            "ConditionExpression": "n = :one",
            "ExpressionAttributeNames": { "#wtok": WRITE_TOKEN_ATTRIBUTE },
            "ExpressionAttributeValues": {
                ":one": {"N": "1"}, ":two": {"N": "2"}, ":wtok": t.attribute_value(),
            },
        })
    };
    let upd = WriteToken::random();
    assert!(matches!(
        db.conditional_write("UpdateItem", &update(&upd), &upd)
            .await
            .unwrap(),
        ConditionalWrite::Applied { .. }
    ));
    assert_eq!(
        db.conditional_write("UpdateItem", &update(&upd), &upd)
            .await
            .unwrap(),
        ConditionalWrite::Applied { attributes: None },
        "the retry of an applied update"
    );
    assert!(matches!(
        db.conditional_write("UpdateItem", &update(&other), &other)
            .await
            .unwrap(),
        ConditionalWrite::ConditionFailed(Some(_))
    ));

    // The dedup store writes its call's token on the item.
    let key = json!({"pk": {"S": "evt_tok"}});
    store
        .insert_if_absent("evt_tok", Duration::from_secs(60))
        .await
        .unwrap();
    let item = db
        .get_item(&table, key.as_object().unwrap().clone())
        .await
        .unwrap()
        .unwrap();
    assert!(
        item[WRITE_TOKEN_ATTRIBUTE]["S"]
            .as_str()
            .is_some_and(|t| t.len() == 32)
    );
}
