//! Web Push's state (migration 1005): subscriptions with a per-person cap, what owes a push and
//! when, acks that cancel it, and records that count once.

use parkmate_db::{Db, DbError, EventPreference, PushRecord, QuietHours, SubscriptionSaved};
use parkmate_protocol::{Audience, Level, Role, Viewer};

use super::note;

const CAROL: Viewer = Viewer {
    user_id: 7,
    role: Role::User,
};

fn urgent(msg: &str) -> parkmate_db::NewNotification {
    parkmate_db::NewNotification::new(Audience::User(7), Level::Warning, "booking_expiring", msg)
}

pub async fn push_subscriptions_are_capped_and_escalation_owes_one_push(store: Db) {
    // Stored before push existed for this person (no subscription): owes nothing, ever.
    let before = store
        .insert_batch(&[note(Audience::User(7), "no subscription yet")])
        .await
        .unwrap();
    assert!(!store.scan_for_push(10_000, &[]).await.unwrap());

    // Subscriptions: keyed by endpoint, capped per person, movable between people.
    let save = |endpoint: &'static str, user: i64| {
        let store = store.clone();
        async move {
            store
                .save_push_subscription(user, endpoint, "p256dh", "auth", 1, 2)
                .await
                .unwrap()
        }
    };
    let SubscriptionSaved::Created { id: first } = save("https://push.example/a", 7).await else {
        panic!("not created")
    };
    assert_eq!(
        save("https://push.example/a", 7).await,
        SubscriptionSaved::Updated { id: first }
    );
    assert!(matches!(
        save("https://push.example/b", 7).await,
        SubscriptionSaved::Created { .. }
    ));
    assert_eq!(
        save("https://push.example/c", 7).await,
        SubscriptionSaved::TooMany { max: 2 }
    );
    assert!(matches!(
        save("https://push.example/b", 8).await,
        SubscriptionSaved::Created { .. }
    ));
    let mine = store.push_subscriptions(7).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].endpoint, "https://push.example/a");
    assert!(
        !store
            .delete_push_subscription(7, "https://push.example/b")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_push_subscription(8, "https://push.example/b")
            .await
            .unwrap()
    );

    // The scan gives due times: the window for ordinary events, none for urgent ones; a role
    // notification and one to a person without subscriptions owe nothing.
    let stored = store
        .insert_batch(&[
            note(Audience::User(7), "ordinary"),
            urgent("urgent"),
            note(Audience::Role(Role::User), "to a role"),
            note(Audience::User(9), "no subscription"),
        ])
        .await
        .unwrap();
    let (ordinary, urgent_n) = (&stored[0], &stored[1]);
    assert!(
        !store
            .scan_for_push(10_000, &["booking_expiring"])
            .await
            .unwrap()
    );
    assert!(
        !store
            .scan_for_push(10_000, &["booking_expiring"])
            .await
            .unwrap()
    );
    let created = urgent_n.created_at.timestamp_millis();
    let due = store.due_pushes(created, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|o| o.notification.id).collect::<Vec<_>>(),
        vec![urgent_n.id]
    );
    let later = created + 10_000;
    let due = store.due_pushes(later, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|o| o.notification.id).collect::<Vec<_>>(),
        vec![urgent_n.id, ordinary.id]
    );
    assert!(
        store
            .delivery_status(before[0].id)
            .await
            .unwrap()
            .unwrap()
            .1
            .is_empty()
    );

    // An ack cancels what is owed; a push recorded once stays recorded.
    assert_eq!(
        store.mark_seen(CAROL, ordinary.id, later).await.unwrap(),
        "custom"
    );
    store
        .record_push(urgent_n.id, 7, PushRecord::RetryAt(later + 5), later)
        .await
        .unwrap();
    assert!(store.due_pushes(later, 10).await.unwrap().is_empty());
    assert_eq!(store.next_push_due().await.unwrap(), Some(later + 5));
    store
        .record_push(urgent_n.id, 7, PushRecord::Pushed, later + 6)
        .await
        .unwrap();
    store
        .record_push(urgent_n.id, 7, PushRecord::Failed, later + 7)
        .await
        .unwrap();
    assert_eq!(store.next_push_due().await.unwrap(), None);
    let (_, status) = store.delivery_status(urgent_n.id).await.unwrap().unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].pushed_at_ms, Some(later + 6));
    assert_eq!(status[0].push_failed_at_ms, None);
    assert_eq!(status[0].push_attempts, 2);
    let (_, status) = store.delivery_status(ordinary.id).await.unwrap().unwrap();
    assert_eq!(status[0].seen_at_ms, Some(later));
    assert_eq!(status[0].delivered_at_ms, Some(later));
    assert_eq!(status[0].pushed_at_ms, None);

    // An ack for what the viewer cannot see is "not found"; an ack before the scan still wins.
    let other = store
        .insert_batch(&[note(Audience::User(9), "not Carol's")])
        .await
        .unwrap();
    assert!(matches!(
        store.mark_seen(CAROL, other[0].id, later).await,
        Err(DbError::NotFound)
    ));
    let early = store.insert_batch(&[urgent("acked early")]).await.unwrap();
    store.mark_seen(CAROL, early[0].id, later).await.unwrap();
    store
        .scan_for_push(10_000, &["booking_expiring"])
        .await
        .unwrap();
    assert!(store.due_pushes(i64::MAX, 10).await.unwrap().is_empty());

    // Preferences: a kind turned off owes nothing; `lot_activity` is off unless chosen; quiet
    // hours are stored as given.
    let prefs = [
        EventPreference {
            event: "custom".into(),
            in_app: true,
            push: false,
        },
        EventPreference {
            event: "lot_activity".into(),
            in_app: false,
            push: true,
        },
    ];
    let quiet = QuietHours {
        time_zone: "Europe/Paris".into(),
        start_minute: 22 * 60,
        end_minute: 7 * 60,
    };
    store
        .set_push_preferences(7, &prefs, Some(&quiet))
        .await
        .unwrap();
    let (stored_prefs, stored_quiet) = store.push_preferences(7).await.unwrap();
    assert_eq!(stored_prefs, prefs.to_vec());
    assert_eq!(stored_quiet.as_ref(), Some(&quiet));
    assert_eq!(store.quiet_hours(7).await.unwrap(), Some(quiet));
    let kinds = |event: &str| {
        parkmate_db::NewNotification::new(Audience::User(7), Level::Info, event, event)
    };
    let batch = store
        .insert_batch(&[
            kinds("custom"),
            kinds("lot_activity"),
            kinds("booking_renewed"),
        ])
        .await
        .unwrap();
    store.scan_for_push(0, &[]).await.unwrap();
    let owed: Vec<i64> = store
        .due_pushes(i64::MAX, 10)
        .await
        .unwrap()
        .iter()
        .map(|o| o.notification.id)
        .collect();
    assert_eq!(owed, vec![batch[1].id, batch[2].id]);
    store.set_push_preferences(7, &[], None).await.unwrap();
    assert_eq!(store.push_preferences(7).await.unwrap(), (vec![], None));
    // Held (quiet hours) is not an attempt.
    store
        .record_push(batch[1].id, 7, PushRecord::HoldUntil(i64::MAX - 1), 0)
        .await
        .unwrap();
    let (_, status) = store.delivery_status(batch[1].id).await.unwrap().unwrap();
    assert_eq!(
        (status[0].push_due_at_ms, status[0].push_attempts),
        (Some(i64::MAX - 1), 0)
    );
}
