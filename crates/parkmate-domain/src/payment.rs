//! Taking money. The domain only sees the [`PaymentGateway`] trait; no real provider is reachable
//! from here, so the built-in [`TestGateway`] answers by card number the way providers' sandboxes
//! do (the table is in `docs/booking-api.md`).

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
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's reference, stored with the booking (and used to refund).
    pub reference: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the card; the reason is shown to the driver.
    #[error("{0}")]
    Declined(String),
    /// The provider could not be reached or failed; nothing was charged.
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    async fn charge(&self, charge: Charge) -> Result<Receipt, PaymentError>;
    /// Gives back a charge whose booking could not be made after all (e.g. the slot was taken
    /// between the availability check and the commit).
    async fn refund(&self, receipt: &Receipt) -> Result<(), PaymentError>;
}

pub const CARD_APPROVED: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
pub const CARD_GATEWAY_ERROR: &str = "4000000000000119";

/// The sandbox: the outcome depends on the card number only.
#[derive(Debug, Default)]
pub struct TestGateway {
    /// Source of receipt references; unique per process, which is all a sandbox needs.
    next_ref: AtomicU64,
}

impl TestGateway {
    pub fn new() -> TestGateway {
        TestGateway::default()
    }
}

#[async_trait]
impl PaymentGateway for TestGateway {
    async fn charge(&self, charge: Charge) -> Result<Receipt, PaymentError> {
        match charge.card.digits() {
            CARD_APPROVED => {
                let n = self.next_ref.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(Receipt {
                    reference: format!("test_ch_{n}"),
                    amount_cents: charge.amount_cents,
                })
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

    async fn refund(&self, _receipt: &Receipt) -> Result<(), PaymentError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn charge(card: &str) -> Result<Receipt, PaymentError> {
        TestGateway::new()
            .charge(Charge {
                card: CardNumber::parse(card).unwrap(),
                amount_cents: 500,
                description: "t".into(),
            })
            .await
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
