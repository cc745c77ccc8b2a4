//! The conformance story: what every engine must do, for every query of the crate. Every case is
//! a function of a [`Db`] run on SQLite (a temporary file) and on PostgreSQL (a fresh database per
//! case, see `parkmate_db::test_support`) by the `conformance!` macro at the bottom. The
//! notification store's cases are in this file, the booking domain's queries in `domain.rs`.
//!
//! Over 500 lines on purpose: a flat list of short, independent store cases plus the macro that
//! runs each on both engines; they share no state.

use std::collections::BTreeSet;
use std::sync::Arc;

use parkmate_db::test_support::fresh_postgres;
use parkmate_db::{Db, DbError, NewNotification, PageBudget};
use parkmate_protocol::{Audience, Level, Role, Viewer};

mod domain;
mod money;
mod push;
use domain::*;
use money::*;
use push::*;

type Store = Db;

async fn open(url: &str) -> Result<Db, DbError> {
    Db::open(url).await
}

async fn sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    (dir, Db::open(&url).await.unwrap())
}

const ALICE: Viewer = Viewer {
    user_id: 1,
    role: Role::User,
};
const BOB: Viewer = Viewer {
    user_id: 2,
    role: Role::Owner,
};

/// A page of at most `n` rows and a byte budget no test reaches.
fn rows(n: u32) -> PageBudget {
    PageBudget {
        rows: n,
        bytes: 1 << 20,
    }
}

fn note(audience: Audience, msg: &str) -> NewNotification {
    NewNotification::new(audience, Level::Info, "custom", msg)
}

async fn ids_are_monotonic_and_replay_merges_streams_in_order(store: Store) {
    let stored = store
        .insert_batch(&[
            note(Audience::User(1), "a1"),
            note(Audience::User(2), "b1"),
            note(Audience::Role(Role::Owner), "owners"),
            note(Audience::All, "everyone"),
            note(Audience::User(1), "a2"),
        ])
        .await
        .unwrap();
    let ids: Vec<i64> = stored.iter().map(|n| n.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let alice: Vec<String> = store
        .replay(ALICE, 0, rows(100))
        .await
        .unwrap()
        .notifications
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(alice, ["a1", "everyone", "a2"]);
    let bob: Vec<String> = store
        .replay(BOB, 0, rows(100))
        .await
        .unwrap()
        .notifications
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(bob, ["b1", "owners", "everyone"]);
    let after = store
        .replay(ALICE, ids[3], rows(100))
        .await
        .unwrap()
        .notifications;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].message, "a2");
    assert_eq!(store.after(ids[2], 100).await.unwrap().len(), 2);
    assert_eq!(store.max_id().await.unwrap(), ids[4]);
}

/// A page stops at the row that passes its byte budget (so it always holds one), says whether
/// more follow, and resume cuts its first page the same way.
async fn replay_pages_stop_at_their_byte_budget(store: Store) {
    let big = "x".repeat(1000);
    let mut batch: Vec<NewNotification> = (0..5).map(|_| note(Audience::User(1), &big)).collect();
    batch.push(note(Audience::User(1), "small"));
    let stored = store.insert_batch(&batch).await.unwrap();
    // `data` is `{}`: 2 bytes each.
    let budget = PageBudget {
        rows: 100,
        bytes: 2500,
    };
    let page = store.replay(ALICE, 0, budget).await.unwrap();
    let ids: Vec<i64> = page.notifications.iter().map(|n| n.id).collect();
    assert_eq!(ids, [stored[0].id, stored[1].id, stored[2].id]);
    assert!(page.more);
    let (_, first) = store.resume(ALICE, 0, budget).await.unwrap();
    assert_eq!(first, page);

    let tiny = PageBudget {
        rows: 100,
        bytes: 1,
    };
    let page = store.replay(ALICE, 0, tiny).await.unwrap();
    assert_eq!(page.notifications.len(), 1, "a page always makes progress");
    assert!(page.more);

    let rest = store.replay(ALICE, stored[3].id, budget).await.unwrap();
    assert_eq!(rest.notifications.len(), 2);
    assert!(!rest.more, "everything fitted");
    let full = store
        .replay(
            ALICE,
            stored[3].id,
            PageBudget {
                rows: 2,
                bytes: 1 << 20,
            },
        )
        .await
        .unwrap();
    assert!(
        full.more,
        "a page that filled its rows may have more after it"
    );
    let none = store.replay(ALICE, stored[5].id, budget).await.unwrap();
    assert!(none.notifications.is_empty() && !none.more);
}

async fn dedupe_key_makes_retries_idempotent(store: Store) {
    let n = note(Audience::User(1), "once").with_dedupe_key("k1");
    let first = store.insert_batch(std::slice::from_ref(&n)).await.unwrap();
    let second = store.insert_batch(&[n]).await.unwrap();
    assert_eq!(first[0].id, second[0].id);
    assert_eq!(
        store
            .replay(ALICE, 0, rows(10))
            .await
            .unwrap()
            .notifications
            .len(),
        1
    );
}

async fn read_state_is_per_user_also_for_group_notifications(store: Store) {
    let stored = store
        .insert_batch(&[
            note(Audience::All, "x"),
            note(Audience::User(1), "y"),
            note(Audience::User(2), "z"),
        ])
        .await
        .unwrap();
    assert_eq!(store.unread(ALICE).await.unwrap().count, 2);
    assert_eq!(store.unread(BOB).await.unwrap().count, 2);

    let s = store.mark_read(ALICE, stored[0].id).await.unwrap();
    assert_eq!(s.count, 1);
    assert_eq!(s.as_of, stored[2].id);
    // Alice reading the broadcast leaves Bob's copy unread.
    assert_eq!(store.unread(BOB).await.unwrap().count, 2);
    // Marking twice is harmless.
    assert_eq!(store.mark_read(ALICE, stored[0].id).await.unwrap().count, 1);
    // Bob's own notification is not Alice's to read.
    assert!(matches!(
        store.mark_read(ALICE, stored[2].id).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        store.mark_read(ALICE, 999).await,
        Err(DbError::NotFound)
    ));

    let page = store.inbox(ALICE, None, 10).await.unwrap();
    let flags: Vec<(String, bool)> = page
        .items
        .iter()
        .map(|i| (i.notification.message.clone(), i.read))
        .collect();
    assert_eq!(flags, [("y".to_string(), false), ("x".to_string(), true)]);

    assert_eq!(store.mark_all_read(ALICE).await.unwrap().count, 0);
    assert!(
        store
            .inbox(ALICE, None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .all(|i| i.read)
    );
    // New notifications after "read all" are unread again.
    store
        .insert_batch(&[note(Audience::Role(Role::User), "drivers")])
        .await
        .unwrap();
    assert_eq!(store.unread(ALICE).await.unwrap().count, 1);
    assert_eq!(store.unread(BOB).await.unwrap().count, 2);
}

async fn inbox_pages_newest_first(store: Store) {
    let batch: Vec<_> = (0..5)
        .map(|i| note(Audience::User(1), &format!("m{i}")))
        .collect();
    store.insert_batch(&batch).await.unwrap();
    let p1 = store.inbox(ALICE, None, 2).await.unwrap();
    assert_eq!(
        p1.items
            .iter()
            .map(|i| i.notification.message.as_str())
            .collect::<Vec<_>>(),
        ["m4", "m3"]
    );
    let p2 = store.inbox(ALICE, p1.next_before, 2).await.unwrap();
    assert_eq!(
        p2.items
            .iter()
            .map(|i| i.notification.message.as_str())
            .collect::<Vec<_>>(),
        ["m2", "m1"]
    );
    let p3 = store.inbox(ALICE, p2.next_before, 2).await.unwrap();
    assert_eq!(p3.items.len(), 1);
    assert_eq!(p3.next_before, None);
}

/// A batch as large as the writer's group commit and more (it commits up to 512 at once): the
/// rows come back in batch order, ids strictly increase along the batch, and the store itself
/// (read in id order) holds them in batch order, so id order is batch order, not just the answer.
async fn big_batch_keeps_batch_order_in_ids(store: Store) {
    const ROWS: usize = 600;
    let audiences = [
        Audience::User(1),
        Audience::Role(Role::Owner),
        Audience::All,
        Audience::User(2),
    ];
    let batch: Vec<_> = (0..ROWS)
        .map(|i| {
            let n = note(audiences[i % audiences.len()], &format!("m{i}"))
                .with_data(serde_json::json!({ "i": i }));
            // Some rows carry a (fresh) dedupe key: they are inserted like the others.
            if i % 7 == 0 {
                n.with_dedupe_key(format!("big-{i}"))
            } else {
                n
            }
        })
        .collect();
    let stored = store.insert_batch(&batch).await.unwrap();
    assert_eq!(stored.len(), ROWS);
    for (n, s) in batch.iter().zip(&stored) {
        assert_eq!(s.message, n.message);
        assert_eq!(s.audience, n.audience);
        assert_eq!(s.data, n.data);
    }
    assert!(
        stored.windows(2).all(|w| w[0].id < w[1].id),
        "ids must increase along the batch"
    );
    let read: Vec<_> = store.after(0, 1000).await.unwrap();
    assert_eq!(read, stored, "the store's id order is the batch order");
}

/// A batch mixing new rows with retries of stored ones: each retry is answered with the original
/// row (its id, its message, its time) in its own position; only the new rows are stored, with
/// ids in batch order above the originals.
async fn batch_mixing_new_and_stored_keys_answers_originals_in_place(store: Store) {
    let originals = store
        .insert_batch(&[
            note(Audience::User(1), "orig1").with_dedupe_key("k1"),
            note(Audience::User(1), "orig2").with_dedupe_key("k2"),
        ])
        .await
        .unwrap();
    let stored = store
        .insert_batch(&[
            note(Audience::User(1), "new-a"),
            note(Audience::User(1), "retry1").with_dedupe_key("k1"),
            note(Audience::User(1), "new-b").with_dedupe_key("k3"),
            note(Audience::All, "retry2").with_dedupe_key("k2"),
            note(Audience::User(1), "new-c"),
        ])
        .await
        .unwrap();
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[1], originals[0]);
    assert_eq!(stored[3], originals[1]);
    let new: Vec<_> = [&stored[0], &stored[2], &stored[4]]
        .iter()
        .map(|n| (n.id, n.message.as_str()))
        .collect();
    assert_eq!(
        new.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        ["new-a", "new-b", "new-c"]
    );
    assert!(new[0].0 > originals[1].id);
    assert!(new.windows(2).all(|w| w[0].0 < w[1].0));
    let all: Vec<String> = store
        .after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(all, ["orig1", "orig2", "new-a", "new-b", "new-c"]);
}

/// Two rows of one batch with the same dedupe key: the first is stored, every later one is
/// answered with the first one's row, as if it were a retry sent right after it.
async fn duplicate_key_inside_one_batch_answers_the_first_row(store: Store) {
    let stored = store
        .insert_batch(&[
            note(Audience::User(1), "first").with_dedupe_key("dup"),
            note(Audience::User(1), "between"),
            note(Audience::User(2), "second").with_dedupe_key("dup"),
            note(Audience::User(1), "other").with_dedupe_key("other"),
            note(Audience::All, "third").with_dedupe_key("dup"),
        ])
        .await
        .unwrap();
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[0].message, "first");
    assert_eq!(stored[2], stored[0]);
    assert_eq!(stored[4], stored[0]);
    assert_eq!(stored[1].message, "between");
    assert_eq!(stored[3].message, "other");
    assert!(stored[0].id < stored[1].id && stored[1].id < stored[3].id);
    let all: Vec<(i64, String)> = store
        .after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id, n.message))
        .collect();
    assert_eq!(
        all,
        [
            (stored[0].id, "first".to_owned()),
            (stored[1].id, "between".to_owned()),
            (stored[3].id, "other".to_owned()),
        ]
    );
}

async fn outbox_cursor_only_moves_forward(store: Store) {
    assert_eq!(store.published_through().await.unwrap(), 0);
    store.set_published_through(5).await.unwrap();
    store.set_published_through(3).await.unwrap();
    assert_eq!(store.published_through().await.unwrap(), 5);
}

/// Retention deletes old rows in batches, never one the outbox has not published, and takes their
/// read marks with them so the unread count stays consistent.
async fn retention_prunes_only_old_published_rows(store: Store) {
    let stored = store
        .insert_batch(&[
            note(Audience::User(1), "a1"),
            note(Audience::All, "everyone"),
            note(Audience::User(1), "a2"),
            note(Audience::User(1), "a3"),
        ])
        .await
        .unwrap();
    let ids: Vec<i64> = stored.iter().map(|n| n.id).collect();
    store.mark_read(ALICE, ids[1]).await.unwrap();
    assert_eq!(store.unread(ALICE).await.unwrap().count, 3);

    // Nothing is older than an hour ago.
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(store.prune_notifications(past, 100).await.unwrap(), 0);

    // Everything is older than a minute from now, but only three rows are published.
    store.set_published_through(ids[2]).await.unwrap();
    let future = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert_eq!(store.prune_notifications(future, 2).await.unwrap(), 2);
    assert_eq!(store.prune_notifications(future, 2).await.unwrap(), 1);
    assert_eq!(store.prune_notifications(future, 2).await.unwrap(), 0);
    let left: Vec<String> = store
        .replay(ALICE, 0, rows(100))
        .await
        .unwrap()
        .notifications
        .into_iter()
        .map(|n| n.message)
        .collect();
    assert_eq!(left, ["a3"], "the unpublished row stays");
    let unread = store.unread(ALICE).await.unwrap();
    assert_eq!(unread.count, 1);
    // The read mark of the deleted broadcast went with it, so marking the rest read works.
    assert_eq!(store.mark_all_read(ALICE).await.unwrap().count, 0);

    store.set_published_through(ids[3]).await.unwrap();
    assert_eq!(store.prune_notifications(future, 2).await.unwrap(), 1);
    assert_eq!(store.max_id().await.unwrap(), 0, "the table is empty");
}

#[tokio::test]
async fn unknown_url_scheme_is_an_error() {
    assert!(matches!(
        open("mysql://x").await,
        Err(DbError::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn unreachable_postgres_is_an_error_not_a_fallback() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    assert!(matches!(
        open("postgres://postgres@127.0.0.1:1/nowhere").await,
        Err(DbError::Unavailable(_))
    ));
}

/// Many transactions write notifications at once while a reader follows `after(cursor)` like the
/// outbox dispatcher does. If an id could commit below one the reader has already seen (sequence
/// order ≠ commit order), the reader would skip it for good: every stored id must be seen, once,
/// in increasing order.
async fn concurrent_writers_never_commit_behind_a_reader(store: Store) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 40;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = Vec::new();
            loop {
                // Read `done` before the pass: the pass after the last writer finished sees all.
                let last = done.load(std::sync::atomic::Ordering::SeqCst);
                let rows = store.after(cursor, 1000).await.unwrap();
                for n in rows {
                    assert!(n.id > cursor, "ids go backwards: {} after {cursor}", n.id);
                    cursor = n.id;
                    seen.push(n.id);
                }
                if last {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..BATCHES {
                    let batch: Vec<_> = (0..3)
                        .map(|i| note(Audience::User(w as i64), &format!("w{w} b{b} n{i}")))
                        .collect();
                    store.insert_batch(&batch).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let stored: BTreeSet<i64> = store
        .after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(stored.len(), WRITERS * BATCHES * 3);
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), seen_set.len(), "a row was read twice");
    let missed: Vec<_> = stored.difference(&seen_set).collect();
    assert!(
        missed.is_empty(),
        "the reader skipped rows that committed behind its cursor: {missed:?}"
    );
}

/// `resume` answers exactly what `greeting` (and `unread`) and then `replay` answer, for every
/// kind of `after`; the greeting's `newest` is the newest id of the viewer's own streams.
async fn resume_is_the_unread_state_and_the_first_replay_page(store: Store) {
    let ids =
        |page: &[parkmate_db::StoredNotification]| page.iter().map(|n| n.id).collect::<Vec<_>>();
    let (greeting, page) = store.resume(ALICE, 0, rows(10)).await.unwrap();
    let page = page.notifications;
    assert_eq!(
        (
            greeting.unread.count,
            greeting.unread.as_of,
            greeting.newest
        ),
        (0, 0, 0)
    );
    assert!(page.is_empty());

    let stored = store
        .insert_batch(&[
            note(Audience::User(ALICE.user_id), "a1"),
            note(Audience::User(BOB.user_id), "b1"),
            note(Audience::All, "everyone"),
            note(Audience::Role(Role::Owner), "owners"),
            note(Audience::Role(Role::User), "users"),
            note(Audience::User(ALICE.user_id), "a2"),
        ])
        .await
        .unwrap();
    store.mark_read(ALICE, stored[0].id).await.unwrap();
    let last = stored.last().unwrap().id;
    for viewer in [ALICE, BOB] {
        for after in [0, stored[0].id, stored[3].id, last, last + 100] {
            for limit in [1, 2, 10] {
                let (greeting, page) = store.resume(viewer, after, rows(limit)).await.unwrap();
                let page = page.notifications;
                assert_eq!(greeting, store.greeting(viewer).await.unwrap());
                assert_eq!(greeting.unread, store.unread(viewer).await.unwrap());
                let expected = store
                    .replay(viewer, after, rows(limit))
                    .await
                    .unwrap()
                    .notifications;
                assert_eq!(
                    ids(&page),
                    ids(&expected),
                    "{viewer:?} after {after} limit {limit}"
                );
                assert_eq!(
                    page.first().map(|n| &n.message),
                    expected.first().map(|n| &n.message)
                );
            }
        }
    }
    let (greeting, page) = store.resume(ALICE, 0, rows(10)).await.unwrap();
    let page = page.notifications;
    // a2, everyone, users; a1 was read.
    assert_eq!(greeting.unread.count, 3);
    assert_eq!(greeting.unread.as_of, last);
    assert_eq!(page.len(), 4);
    // Alice's newest is a2 (the last row); Bob's is "owners", below the store's newest.
    assert_eq!(greeting.newest, last);
    let bob = store.greeting(BOB).await.unwrap();
    assert_eq!((bob.newest, bob.unread.as_of), (stored[3].id, last));
    // Newer rows of other streams move `as_of`, never a viewer's `newest`.
    let more = store
        .insert_batch(&[note(Audience::User(ALICE.user_id), "a3")])
        .await
        .unwrap();
    let bob = store.greeting(BOB).await.unwrap();
    assert_eq!((bob.newest, bob.unread.as_of), (stored[3].id, more[0].id));
    assert_eq!(store.greeting(ALICE).await.unwrap().newest, more[0].id);
}

/// A commit of notifications on one node wakes a listener on another (the leader's dispatcher
/// publishes rows committed on followers at once, not at its next poll).
#[tokio::test]
async fn postgres_commit_wakes_listeners_on_other_nodes() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let listening = open(&pg.url).await.unwrap();
    let writing = open(&pg.url).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = tokio_util::sync::CancellationToken::new();
    listening.on_foreign_commits(
        move || {
            let _ = tx.send(());
        },
        stop.clone().cancelled_owned(),
    );
    // The listener wakes once when it starts listening: from then on no commit is missed.
    rx.recv().await.expect("a wake-up when listening starts");

    let mut txn = writing.begin().await.unwrap();
    txn.insert_notifications(&[note(Audience::All, "committed")])
        .await
        .unwrap();
    txn.commit().await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("the commit wakes the listener")
        .unwrap();
    stop.cancel();
    writing.close().await;
    listening.close().await;
}

/// Migrations 1002 and 1003 of a database that already held bookings and notifications.
#[tokio::test]
async fn migrations_1002_1003_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    migrations_keep_existing_bookings_and_notifications(&url, "sqlite").await;
}

/// The write-ahead log reaches the database file within seconds of the writes, by the
/// checkpointer and not by the committing writer: ~2 MiB of notifications stay far below the
/// writer's own checkpoint threshold, so without the checkpointer the database file would stay
/// at the size the migrations left.
#[tokio::test]
async fn sqlite_checkpoints_the_log_off_the_commit_path() {
    let (dir, store) = sqlite().await;
    let file = dir.path().join("store.db");
    let message = "x".repeat(1000);
    let batch: Vec<_> = (0..2000)
        .map(|_| note(Audience::User(ALICE.user_id), &message))
        .collect();
    store.insert_batch(&batch).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&file).unwrap().len();
        if size >= 2_000_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file holds {size} bytes 10 s after ~2 MB of writes"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Still readable through the read pool, and closing stops the checkpointer cleanly.
    let page = store.replay(ALICE, 0, rows(10)).await.unwrap();
    assert_eq!(page.notifications.len(), 10);
    store.close().await;
}

#[tokio::test]
async fn migrations_1002_1003_on_postgres() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    migrations_keep_existing_bookings_and_notifications(&pg.url, "postgres").await;
}

/// Runs each engine-generic case on SQLite and on a fresh PostgreSQL database.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let (_dir, store) = super::sqlite().await;
                    super::$case(store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(pg) = super::fresh_postgres().await else { return };
                    let db = super::open(&pg.url).await.unwrap();
                    super::$case(db.clone()).await;
                    db.close().await;
                }
            )*
        }
    };
}

conformance!(
    ids_are_monotonic_and_replay_merges_streams_in_order,
    replay_pages_stop_at_their_byte_budget,
    dedupe_key_makes_retries_idempotent,
    read_state_is_per_user_also_for_group_notifications,
    inbox_pages_newest_first,
    outbox_cursor_only_moves_forward,
    retention_prunes_only_old_published_rows,
    concurrent_writers_never_commit_behind_a_reader,
    resume_is_the_unread_state_and_the_first_replay_page,
    big_batch_keeps_batch_order_in_ids,
    batch_mixing_new_and_stored_keys_answers_originals_in_place,
    duplicate_key_inside_one_batch_answers_the_first_row,
    accounts_lots_and_employees,
    token_versions_follow_role_changes_and_revocations,
    overlapping_active_bookings_are_refused_by_the_database,
    transitions_are_conditional_and_listings_scoped,
    the_scheduler_fires_each_deadline_once,
    a_failed_transaction_leaves_nothing_behind,
    windows_keep_each_payment,
    every_charge_ends_booked_declined_or_refunded,
    requests_lapse_after_their_hold_and_count_toward_the_cap,
    a_lot_audience_follows_current_membership,
    push_subscriptions_are_capped_and_escalation_owes_one_push,
);
