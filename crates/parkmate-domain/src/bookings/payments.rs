//! Taking and giving back money for bookings, through the [`PaymentGateway`](crate::PaymentGateway).
//! Gateway calls never run inside a transaction: a slow provider must not hold the write
//! connection.

use super::PaymentChoice;
use crate::payment::{Charge, PaymentError, Receipt};
use crate::{Domain, DomainError};

impl Domain {
    /// Charges an online payment; `None` for cash.
    pub(super) async fn charge(
        &self,
        payment: &PaymentChoice,
        amount: i64,
        description: String,
    ) -> Result<Option<Receipt>, DomainError> {
        let PaymentChoice::Online(card) = payment else {
            return Ok(None);
        };
        let charge = Charge {
            card: card.clone(),
            amount_cents: amount,
            description,
        };
        match self.inner.gateway.charge(charge).await {
            Ok(r) => Ok(Some(r)),
            Err(PaymentError::Declined(reason)) => Err(DomainError::PaymentDeclined(reason)),
            Err(PaymentError::Unavailable(reason)) => Err(DomainError::PaymentUnavailable(reason)),
        }
    }

    /// Gives back a charge whose booking could not be made after all.
    pub(super) async fn refund(&self, receipt: Option<&Receipt>) {
        if let Some(r) = receipt
            && let Err(e) = self.inner.gateway.refund(r).await
        {
            // Money taken for nothing must reach a human: logged with the reference.
            tracing::error!(reference = %r.reference, error = %e, "refund failed");
        }
    }
}
