//! The store on the backend under test: migrations and the lease queue.

use std::collections::HashSet;

use feedkeeper::db::jobs;

use crate::helpers::TestDb;

#[tokio::test]
async fn migrations_can_run_again() {
    let t = TestDb::new().await;
    t.db.migrate().await.unwrap();
    t.db.ping().await.unwrap();
}

#[tokio::test]
async fn a_job_is_claimed_only_when_due_and_only_once() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "refresh", "conn-1", 100, 0)
        .await
        .unwrap();
    assert!(
        jobs::claim_due(db, "refresh", "a", 99, 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = jobs::claim_due(db, "refresh", "a", 100, 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].subject, "conn-1");
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("a"));
    assert_eq!(claimed[0].attempts, 1);
    // Leased: nobody else gets it until the lease runs out.
    assert!(
        jobs::claim_due(db, "refresh", "b", 150, 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Other kinds are separate queues.
    assert!(
        jobs::claim_due(db, "sync", "b", 150, 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_expired_lease_passes_to_another_node_and_the_old_holder_cannot_finish() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "refresh", "conn-1", 100, 0)
        .await
        .unwrap();
    let first = jobs::claim_due(db, "refresh", "crashed-node", 100, 60, 1)
        .await
        .unwrap();
    let second = jobs::claim_due(db, "refresh", "node-b", 160, 60, 1)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "the lease expired at 160");
    assert_eq!(second[0].attempts, 2);
    assert!(
        !jobs::finish(db, first[0].id, "crashed-node", Some(500))
            .await
            .unwrap()
    );
    assert!(
        jobs::finish(db, second[0].id, "node-b", Some(500))
            .await
            .unwrap()
    );
    let job = jobs::get(db, "refresh", "conn-1").await.unwrap();
    assert_eq!((job.due_at, job.lease_owner, job.attempts), (500, None, 0));
}

#[tokio::test]
async fn failing_records_the_error_and_keeps_counting_attempts() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "sync", "c", 0, 0).await.unwrap();
    let job = jobs::claim_due(db, "sync", "n", 0, 60, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        jobs::fail(db, job.id, "n", "meta said no", 300)
            .await
            .unwrap()
    );
    let stored = jobs::get(db, "sync", "c").await.unwrap();
    assert_eq!(stored.last_error.as_deref(), Some("meta said no"));
    assert_eq!(stored.due_at, 300);
    let again = jobs::claim_due(db, "sync", "n", 300, 60, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempts, 2);
    // Finishing without a next time removes the job.
    assert!(jobs::finish(db, again.id, "n", None).await.unwrap());
    assert!(matches!(
        jobs::get(db, "sync", "c").await,
        Err(feedkeeper::db::DbError::NotFound)
    ));
}

#[tokio::test]
async fn rescheduling_moves_the_due_time_without_duplicating() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "refresh", "x", 100, 0).await.unwrap();
    jobs::schedule(db, "refresh", "x", 50, 0).await.unwrap();
    let claimed = jobs::claim_due(db, "refresh", "n", 60, 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(jobs::cancel_for_subject(db, "x").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_job() {
    let t = TestDb::new().await;
    for i in 0..120 {
        jobs::schedule(&t.db, "sync", &format!("s{i}"), i, 0)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for worker in 0..6 {
        let db = t.db.clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("node-{worker}");
            let mut mine = Vec::new();
            loop {
                let batch = jobs::claim_due(&db, "sync", &owner, 1_000, 600, 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|j| j.id));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for task in tasks {
        for id in task.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "job {id} was claimed twice");
        }
    }
    assert_eq!(total, 120);
}
