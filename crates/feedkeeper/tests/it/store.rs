//! The store on the backend under test: migrations, transactions and the lease queue.

use std::collections::HashSet;

use feedkeeper::db::{DbError, jobs};

use crate::helpers::TestDb;

/// Lease times in these tests: wall-clock milliseconds, passed explicitly.
const T0: i64 = 1_000_000;
const LEASE: i64 = 60_000;

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
        jobs::claim_due(db, "refresh", "a", 99, T0, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = jobs::claim_due(db, "refresh", "a", 100, T0, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].subject, "conn-1");
    assert_eq!(claimed[0].lease_owner.as_deref(), Some("a"));
    assert_eq!(claimed[0].attempts, 1);
    assert!(
        claimed[0].lease().is_some(),
        "a claim carries a lease token"
    );
    // Leased: nobody else gets it until the lease runs out, whatever the service's clock says.
    assert!(
        jobs::claim_due(db, "refresh", "b", 1_000_000, T0 + LEASE - 1, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Other kinds are separate queues.
    assert!(
        jobs::claim_due(db, "sync", "b", 150, T0, LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_expired_lease_passes_to_another_node_and_the_old_holder_can_change_nothing() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "refresh", "conn-1", 100, 0)
        .await
        .unwrap();
    let first = jobs::claim_due(db, "refresh", "crashed-node", 100, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    let second = jobs::claim_due(db, "refresh", "node-b", 100, T0 + LEASE, LEASE, 1)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "the lease expired");
    assert_eq!(second[0].attempts, 2);
    let (old, new) = (first.lease().unwrap(), second[0].lease().unwrap());
    assert_ne!(old, new, "every claim has its own token");
    // Even the same node name could not use an old claim: the token fences.
    assert!(!jobs::hold(db, &old, T0 + LEASE, LEASE).await.unwrap());
    assert!(!jobs::is_held(db, &old).await.unwrap());
    assert!(!jobs::finish(db, &old, Some(500)).await.unwrap());
    assert!(!jobs::fail(db, &old, "x", 900, false, 0).await.unwrap());
    assert!(!jobs::release(db, &old).await.unwrap());
    assert!(jobs::finish(db, &new, Some(500)).await.unwrap());
    let job = jobs::get(db, "refresh", "conn-1").await.unwrap();
    assert_eq!((job.due_at, job.lease_owner, job.attempts), (500, None, 0));
}

#[tokio::test]
async fn a_renewed_lease_is_not_taken_over() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "refresh", "c", 0, 0).await.unwrap();
    let job = jobs::claim_due(db, "refresh", "a", 0, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    let lease = job.lease().unwrap();
    assert!(jobs::hold(db, &lease, T0 + LEASE - 1, LEASE).await.unwrap());
    assert!(
        jobs::claim_due(db, "refresh", "b", 0, T0 + LEASE + 1, LEASE, 1)
            .await
            .unwrap()
            .is_empty(),
        "renewed until T0 + 2 * LEASE - 1"
    );
}

#[tokio::test]
async fn failing_records_the_error_keeps_counting_and_goes_dead_for_an_operator() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "sync", "c", 0, 0).await.unwrap();
    let job = jobs::claim_due(db, "sync", "n", 0, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        jobs::fail(db, &job.lease().unwrap(), "database hiccup", 300, false, 0)
            .await
            .unwrap()
    );
    let stored = jobs::get(db, "sync", "c").await.unwrap();
    assert_eq!(stored.last_error.as_deref(), Some("database hiccup"));
    assert_eq!((stored.due_at, stored.last_error_at), (300, Some(0)));
    let again = jobs::claim_due(db, "sync", "n", 300, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempts, 2);
    // The last attempt: dead, never claimed again until an operator revives it.
    assert!(
        jobs::fail(db, &again.lease().unwrap(), "still broken", 600, true, 300)
            .await
            .unwrap()
    );
    assert!(
        jobs::claim_due(db, "sync", "n", 10_000, T0, LEASE, 1)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = jobs::list_dead(db).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].dead_at, Some(300));
    let counts = jobs::counts(db, 10_000, T0).await.unwrap();
    assert_eq!((counts[0].kind.as_str(), counts[0].dead), ("sync", 1));
    assert_eq!(jobs::retry_dead(db, None, 10_000).await.unwrap(), 1);
    let revived = jobs::claim_due(db, "sync", "n", 10_000, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(revived.attempts, 1, "a revived job starts counting again");
    // Finishing without a next time removes the job.
    assert!(
        jobs::finish(db, &revived.lease().unwrap(), None)
            .await
            .unwrap()
    );
    assert!(matches!(
        jobs::get(db, "sync", "c").await,
        Err(DbError::NotFound)
    ));
}

#[tokio::test]
async fn scheduling_a_running_job_is_honoured_when_it_finishes() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "lifecycle", "7", 0, 0).await.unwrap();
    let job = jobs::claim_due(db, "lifecycle", "n", 0, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    let lease = job.lease().unwrap();
    // A reconnect during the run asks for a check at 50; the run (from its older view) wanted
    // 5000, or to drop the job altogether.
    jobs::schedule(db, "lifecycle", "7", 50, 0).await.unwrap();
    assert_eq!(
        jobs::get(db, "lifecycle", "7")
            .await
            .unwrap()
            .lease_owner
            .as_deref(),
        Some("n"),
        "the running claim keeps its lease"
    );
    assert!(jobs::finish(db, &lease, None).await.unwrap());
    let job = jobs::get(db, "lifecycle", "7").await.unwrap();
    assert_eq!((job.due_at, job.lease_owner), (50, None), "not deleted");

    let job = jobs::claim_due(db, "lifecycle", "n", 50, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    jobs::schedule(db, "lifecycle", "7", 900, 0).await.unwrap();
    assert!(
        jobs::finish(db, &job.lease().unwrap(), Some(600))
            .await
            .unwrap()
    );
    assert_eq!(
        jobs::get(db, "lifecycle", "7").await.unwrap().due_at,
        600,
        "the earlier time wins"
    );
}

#[tokio::test]
async fn a_request_made_during_a_failing_run_is_honoured_and_keeps_the_job_alive() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "lifecycle", "9", 0, 0).await.unwrap();
    let job = jobs::claim_due(db, "lifecycle", "n", 0, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    // A reconnect asks for a check at 20 while the last allowed attempt is failing.
    jobs::schedule(db, "lifecycle", "9", 20, 0).await.unwrap();
    assert!(
        jobs::fail(db, &job.lease().unwrap(), "boom", 900, true, 10)
            .await
            .unwrap()
    );
    let job = jobs::get(db, "lifecycle", "9").await.unwrap();
    assert_eq!((job.due_at, job.dead_at), (20, None), "{job:?}");
    assert!(jobs::list_dead(db).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_released_job_is_due_as_before_and_the_claim_does_not_count() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "lifecycle", "1", 40, 0).await.unwrap();
    let job = jobs::claim_due(db, "lifecycle", "n", 40, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert!(jobs::release(db, &job.lease().unwrap()).await.unwrap());
    let again = jobs::claim_due(db, "lifecycle", "m", 40, T0, LEASE, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.due_at, again.attempts), (40, 1));
    // claim_one takes a named job whatever its due time, but not while it is leased.
    assert!(
        jobs::claim_one(db, "lifecycle", "1", "x", T0, LEASE)
            .await
            .unwrap()
            .is_none()
    );
    jobs::finish(db, &again.lease().unwrap(), Some(10_000))
        .await
        .unwrap();
    assert!(
        jobs::claim_one(db, "lifecycle", "1", "x", T0, LEASE)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn rescheduling_moves_the_due_time_without_duplicating() {
    let t = TestDb::new().await;
    let db = &t.db;
    jobs::schedule(db, "refresh", "x", 100, 0).await.unwrap();
    jobs::schedule(db, "refresh", "x", 50, 0).await.unwrap();
    let claimed = jobs::claim_due(db, "refresh", "n", 60, T0, LEASE, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(jobs::cancel_for_subject(db, "x").await.unwrap(), 1);
}

#[tokio::test]
async fn a_transaction_commits_all_of_its_writes_or_none() {
    let t = TestDb::new().await;
    let db = &t.db;
    let mut tx = db.begin().await.unwrap();
    jobs::schedule(&mut tx, "a", "1", 0, 0).await.unwrap();
    jobs::schedule(&mut tx, "b", "1", 0, 0).await.unwrap();
    drop(tx); // a crash before commit
    assert!(matches!(
        jobs::get(db, "a", "1").await,
        Err(DbError::NotFound)
    ));
    let mut tx = db.begin().await.unwrap();
    jobs::schedule(&mut tx, "a", "1", 0, 0).await.unwrap();
    jobs::schedule(&mut tx, "b", "1", 0, 0).await.unwrap();
    tx.commit().await.unwrap();
    assert!(jobs::get(db, "a", "1").await.is_ok());
    assert!(jobs::get(db, "b", "1").await.is_ok());
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
                let batch = jobs::claim_due(&db, "sync", &owner, 1_000, T0, LEASE, 7)
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
