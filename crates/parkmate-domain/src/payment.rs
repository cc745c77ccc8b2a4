//! Taking money. The domain only sees the [`PaymentGateway`] trait; no real provider is reachable
//! from here, so the built-in [`TestGateway`] answers by card number the way providers' sandboxes
//! do (the table is in `docs/booking-api.md`).
//!
//! Every call carries an idempotency key, as real providers' APIs take one: a charge repeated with
//! its key (a retry, recovery after a crash) is the same charge, answered with the first receipt;
//! a refund names the charge by its key, is idempotent too, and for a key the gateway never
//! charged it *voids* the key, so that a charge still in flight cannot go through afterwards.
//! That is what lets the domain settle an uncertain charge without knowing whether it happened.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::types::CardNumber;

/// What to charge.
#[derive(Debug, Clone)]
pub struct Charge {
    pub card: CardNumber,
    pub amount_cents: i64,
    /// A human-readable description for the provider's dashboard.
    pub description: String,
    /// The same key is the same charge (`payments.idempotency_key`).
    pub idempotency_key: String,
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's reference, stored with the payment.
    pub reference: String,
    pub amount_cents: i64,
}

/// Give back (or void) the charge made with `charge_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The key the charge was made with: how the gateway finds it.
    pub charge_key: String,
    /// The gateway's reference of the charge, when it answered one.
    pub charge_reference: Option<String>,
    pub amount_cents: i64,
    /// The refund's own key (`payments.idempotency_key` of the refund row).
    pub idempotency_key: String,
}

/// A refund the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    pub reference: String,
    /// `true` when the gateway had no charge under the key and voided it instead (nothing had
    /// been taken; nothing can be taken with that key any more).
    pub voided: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the card (or, for a refund, refused for good); the reason is shown.
    #[error("{0}")]
    Declined(String),
    /// The provider could not be reached or failed: whether the call took effect is unknown.
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Charges a card. Repeating a charge with its idempotency key answers the first outcome.
    async fn charge(&self, charge: Charge) -> Result<Receipt, PaymentError>;
    /// Gives back the charge made with `refund.charge_key` (idempotent), or voids the key when no
    /// such charge was made.
    async fn refund(&self, refund: &Refund) -> Result<RefundReceipt, PaymentError>;
}

pub const CARD_APPROVED: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
pub const CARD_GATEWAY_ERROR: &str = "4000000000000119";

/// What the sandbox remembers about one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Charged(Receipt),
    Refunded {
        charge: Receipt,
        refund: String,
    },
    /// Refunded before any charge: a later charge with this key is refused.
    Voided(String),
}

/// The sandbox: the outcome depends on the card number only; a ledger by idempotency key makes
/// repeated calls answer like the first (in memory: one process's sandbox, like a provider's test
/// mode that forgets on restart).
#[derive(Debug, Default)]
pub struct TestGateway {
    /// Source of references; unique per process, which is all a sandbox needs.
    next_ref: AtomicU64,
    /// A std mutex: held only to read or update an entry, never across an `.await`.
    ledger: Mutex<HashMap<String, Entry>>,
}

impl TestGateway {
    pub fn new() -> TestGateway {
        TestGateway::default()
    }

    fn reference(&self, prefix: &str) -> String {
        let n = self.next_ref.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{prefix}{n}")
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl PaymentGateway for TestGateway {
    async fn charge(&self, charge: Charge) -> Result<Receipt, PaymentError> {
        match self.ledger().get(&charge.idempotency_key) {
            Some(Entry::Charged(r)) => return Ok(r.clone()),
            Some(Entry::Refunded { .. }) | Some(Entry::Voided(_)) => {
                return Err(PaymentError::Declined("Payment was cancelled".into()));
            }
            None => {}
        }
        match charge.card.digits() {
            CARD_APPROVED => {
                let receipt = Receipt {
                    reference: self.reference("test_ch_"),
                    amount_cents: charge.amount_cents,
                };
                // Two calls racing with one key: the first entry wins, both answer it.
                let entry = self
                    .ledger()
                    .entry(charge.idempotency_key)
                    .or_insert(Entry::Charged(receipt))
                    .clone();
                match entry {
                    Entry::Charged(r) => Ok(r),
                    _ => Err(PaymentError::Declined("Payment was cancelled".into())),
                }
            }
            CARD_DECLINED => Err(PaymentError::Declined("Card declined".into())),
            CARD_INSUFFICIENT_FUNDS => Err(PaymentError::Declined("Insufficient funds".into())),
            CARD_GATEWAY_ERROR => Err(PaymentError::Unavailable(
                "Payment gateway unavailable".into(),
            )),
            // Like a sandbox: numbers it does not know are not "real" cards that might pass.
            _ => Err(PaymentError::Declined(
                "Card not supported by the test gateway".into(),
            )),
        }
    }

    async fn refund(&self, refund: &Refund) -> Result<RefundReceipt, PaymentError> {
        let mut ledger = self.ledger();
        let entry = ledger.remove(&refund.charge_key);
        let (entry, answer) = match entry {
            Some(Entry::Charged(charge)) => {
                let reference = self.reference("test_re_");
                let answer = RefundReceipt {
                    reference: reference.clone(),
                    voided: false,
                };
                (
                    Entry::Refunded {
                        charge,
                        refund: reference,
                    },
                    answer,
                )
            }
            Some(Entry::Refunded { charge, refund }) => {
                let answer = RefundReceipt {
                    reference: refund.clone(),
                    voided: false,
                };
                (Entry::Refunded { charge, refund }, answer)
            }
            Some(Entry::Voided(reference)) => {
                let answer = RefundReceipt {
                    reference: reference.clone(),
                    voided: true,
                };
                (Entry::Voided(reference), answer)
            }
            None => {
                let reference = self.reference("test_void_");
                let answer = RefundReceipt {
                    reference: reference.clone(),
                    voided: true,
                };
                (Entry::Voided(reference), answer)
            }
        };
        ledger.insert(refund.charge_key.clone(), entry);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_charge(card: &str, key: &str) -> Charge {
        Charge {
            card: CardNumber::parse(card).unwrap(),
            amount_cents: 500,
            description: "t".into(),
            idempotency_key: key.into(),
        }
    }

    async fn charge(card: &str) -> Result<Receipt, PaymentError> {
        TestGateway::new().charge(a_charge(card, "k")).await
    }

    fn refund_of(key: &str) -> Refund {
        Refund {
            charge_key: key.into(),
            charge_reference: None,
            amount_cents: 500,
            idempotency_key: format!("{key}:refund"),
        }
    }

    #[tokio::test]
    async fn the_ledger_makes_calls_idempotent_and_voids_unknown_keys() {
        let g = TestGateway::new();
        let first = g.charge(a_charge(CARD_APPROVED, "a")).await.unwrap();
        assert_eq!(g.charge(a_charge(CARD_APPROVED, "a")).await.unwrap(), first);
        let other = g.charge(a_charge(CARD_APPROVED, "b")).await.unwrap();
        assert_ne!(other.reference, first.reference);

        let refunded = g.refund(&refund_of("a")).await.unwrap();
        assert!(!refunded.voided);
        assert_eq!(g.refund(&refund_of("a")).await.unwrap(), refunded);
        // A refunded charge cannot be charged again with its key.
        assert!(matches!(
            g.charge(a_charge(CARD_APPROVED, "a")).await,
            Err(PaymentError::Declined(_))
        ));

        // A key never charged is voided: a charge still on its way is then refused.
        let void = g.refund(&refund_of("late")).await.unwrap();
        assert!(void.voided);
        assert_eq!(g.refund(&refund_of("late")).await.unwrap(), void);
        assert!(matches!(
            g.charge(a_charge(CARD_APPROVED, "late")).await,
            Err(PaymentError::Declined(_))
        ));
        // A declined card leaves no entry: its key can be voided like any unknown one.
        assert!(g.charge(a_charge(CARD_DECLINED, "d")).await.is_err());
        assert!(g.refund(&refund_of("d")).await.unwrap().voided);
    }

    #[tokio::test]
    async fn documented_test_cards() {
        let ok = charge(CARD_APPROVED).await.unwrap();
        assert_eq!(ok.amount_cents, 500);
        assert!(ok.reference.starts_with("test_ch_"));
        assert_eq!(
            charge(CARD_DECLINED).await,
            Err(PaymentError::Declined("Card declined".into()))
        );
        assert_eq!(
            charge(CARD_INSUFFICIENT_FUNDS).await,
            Err(PaymentError::Declined("Insufficient funds".into()))
        );
        assert_eq!(
            charge(CARD_GATEWAY_ERROR).await,
            Err(PaymentError::Unavailable(
                "Payment gateway unavailable".into()
            ))
        );
        assert!(matches!(
            charge("5555555555554444").await,
            Err(PaymentError::Declined(_))
        ));
    }
}
