//! [`OutboxSignal`]: how a writer tells the outbox dispatcher (in `parkmate-notifier`) that it has
//! committed notifications. It lives next to the store, not next to the dispatcher, so that code
//! committing notifications in its own transactions (the booking domain) depends on the store
//! only, not on the publishing pipeline and its broker.

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the dispatcher after a commit. Cheap to clone.
#[derive(Clone, Default, Debug)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    /// Called after a commit that stored notifications.
    pub fn wake(&self) {
        // notify_one keeps a permit when nobody waits, so a wake-up is never lost.
        self.0.notify_one();
    }

    /// Resolves at the next wake-up (or at once for one that came while nobody waited).
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}
