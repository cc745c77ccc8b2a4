//! A socket's bounded queue: one sender (the hub's entry), one receiver (the socket's task).
//!
//! Written here rather than taken from a channel crate because of what a socket does with it. A
//! broadcast wakes every socket once, and the socket takes one delivery and waits again: with
//! flume each wait allocated a waiter node (an `Arc`'d hook) and each delivery walked the waiter
//! list, which together were the largest user-space cost of a broadcast in the profile
//! (BENCHMARKS.md, fourth round). Here the waiter is an [`AtomicWaker`] inside the queue: waiting
//! allocates nothing and waking is a swap. Crates that avoid the per-wait node allocate the
//! queue's slots up front (tokio's first block, async-channel's array), memory every idle socket
//! would carry; this queue's `VecDeque` is empty until something is queued.
//!
//! Only what the hub needs: `try_send` (never waits; `Full` is the hub's slow-consumer signal),
//! `try_recv`, a cancel-safe `recv`, and "the sender is gone" as the drop signal.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// Why [`Sender::try_send`] refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrySendError<T> {
    /// `capacity` items are waiting already.
    Full(T),
    /// The receiver is gone.
    Disconnected(T),
}

struct Chan<T> {
    items: Mutex<Items<T>>,
    /// The receiver's task, when it waits.
    waker: AtomicWaker,
    /// Set once when the sender drops; read without the lock on every wake-up.
    sender_gone: AtomicBool,
}

struct Items<T> {
    queue: VecDeque<T>,
    capacity: usize,
    receiver_gone: bool,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, Items<T>> {
        // Nothing panics while holding the lock; a poisoned one still holds a valid queue.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sending half; dropping it ends the queue (the receiver drains what is left, then sees the
/// end).
pub(crate) struct Sender<T>(Arc<Chan<T>>);

/// The receiving half.
pub(crate) struct Receiver<T>(Arc<Chan<T>>);

/// A queue that holds at most `capacity` items (at least one).
pub(crate) fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        items: Mutex::new(Items {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            receiver_gone: false,
        }),
        waker: AtomicWaker::new(),
        sender_gone: AtomicBool::new(false),
    });
    (Sender(chan.clone()), Receiver(chan))
}

impl<T> Sender<T> {
    /// Queues `item` unless the queue is full or the receiver is gone; never waits.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        {
            let mut items = self.0.lock();
            if items.receiver_gone {
                return Err(TrySendError::Disconnected(item));
            }
            if items.queue.len() >= items.capacity {
                return Err(TrySendError::Full(item));
            }
            items.queue.push_back(item);
        }
        // After the lock is released, so the woken task does not find it held.
        self.0.waker.wake();
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.sender_gone.store(true, Ordering::Release);
        self.0.waker.wake();
    }
}

impl<T> Receiver<T> {
    /// The next item if one is queued.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.0.lock().queue.pop_front()
    }

    /// Whether the sender is gone (items may still be queued).
    pub(crate) fn is_disconnected(&self) -> bool {
        self.0.sender_gone.load(Ordering::Acquire)
    }

    /// The next item; `None` once the sender is gone and the queue drained. Takes nothing unless
    /// it returns `Ready`, so a caller may stop polling at any time without losing an item.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        // Registered before looking again: an item queued (or the sender dropped) between the
        // first look and the registration is seen by the second look, and one queued after it
        // wakes this waker.
        self.0.waker.register(cx.waker());
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        if self.is_disconnected() {
            // Items cannot arrive once the sender is gone, so a last look settles it.
            return Poll::Ready(self.try_recv());
        }
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut items = self.0.lock();
        items.receiver_gone = true;
        // What was queued will never be read: free it now, not when the sender goes.
        items.queue = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Waker;

    fn poll_once<T>(rx: &Receiver<T>) -> Poll<Option<T>> {
        rx.poll_recv(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn holds_capacity_items_then_says_full() {
        let (tx, rx) = bounded(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        assert_eq!(rx.try_recv(), Some(1));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(
            (rx.try_recv(), rx.try_recv(), rx.try_recv()),
            (Some(2), Some(4), None)
        );
    }

    #[test]
    fn a_dropped_sender_is_seen_after_the_queue_drains() {
        let (tx, rx) = bounded(4);
        tx.try_send("a").unwrap();
        assert!(!rx.is_disconnected());
        drop(tx);
        assert!(rx.is_disconnected());
        assert_eq!(poll_once(&rx), Poll::Ready(Some("a")));
        assert_eq!(poll_once(&rx), Poll::Ready(None));
    }

    #[test]
    fn a_dropped_receiver_refuses_sends() {
        let (tx, rx) = bounded(4);
        tx.try_send(1).unwrap();
        drop(rx);
        assert_eq!(tx.try_send(2), Err(TrySendError::Disconnected(2)));
    }

    #[test]
    fn an_empty_queue_waits() {
        let (_tx, rx) = bounded::<u8>(1);
        assert_eq!(poll_once(&rx), Poll::Pending);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receiver_is_woken_from_another_thread_and_loses_nothing() {
        const N: u32 = 20_000;
        let (tx, rx) = bounded(8);
        let producer = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < N {
                match tx.try_send(sent) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full(_)) => std::thread::yield_now(),
                    Err(TrySendError::Disconnected(_)) => panic!("receiver gone"),
                }
            }
        });
        let mut next = 0;
        while let Some(got) = poll_fn(|cx| rx.poll_recv(cx)).await {
            assert_eq!(got, next);
            next += 1;
        }
        assert_eq!(next, N);
        producer.join().unwrap();
    }
}
