//! The booking state machine of `docs/booking-api.md`, as one table.

use crate::types::BookingStatus;

/// Something that moves a booking between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction {
    /// An admin confirms a request.
    Approve,
    /// An admin refuses a request.
    Decline,
    /// The scheduler ends a booking whose window ran out.
    Expire,
    /// The driver pays for a new window of a booking an admin approved once.
    Renew,
    /// The driver renews a booking no admin ever approved: a new request.
    RenewUnapproved,
    /// The scheduler ends a request not approved within the hold.
    Lapse,
}

/// The outcome of [`step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    To(BookingStatus),
    /// Already done: answer the booking as it is.
    Unchanged,
    /// Not allowed from this state.
    Refused,
}

/// What `action` does to a booking in state `from`. Repeating an action that already took effect
/// is [`Step::Unchanged`] (answered, not reported again), so retries are harmless.
pub fn step(from: BookingStatus, action: BookingAction) -> Step {
    use BookingAction as A;
    use BookingStatus as S;
    match (from, action) {
        (S::Requested, A::Approve) => Step::To(S::Confirmed),
        (S::Confirmed, A::Approve) => Step::Unchanged,
        (S::Requested, A::Decline) => Step::To(S::Declined),
        (S::Declined, A::Decline) => Step::Unchanged,
        (S::Requested | S::Confirmed, A::Expire) => Step::To(S::Expired),
        (S::Expired, A::Expire) => Step::Unchanged,
        (S::Expired, A::Renew) => Step::To(S::Confirmed),
        (S::Expired, A::RenewUnapproved) => Step::To(S::Requested),
        (S::Requested, A::Lapse) => Step::To(S::Lapsed),
        (S::Lapsed, A::Lapse) => Step::Unchanged,
        _ => Step::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_machine() {
        use BookingAction::*;
        use BookingStatus::*;
        let table = [
            (Requested, Approve, Step::To(Confirmed)),
            (Confirmed, Approve, Step::Unchanged),
            (Declined, Approve, Step::Refused),
            (Expired, Approve, Step::Refused),
            (Requested, Decline, Step::To(Declined)),
            (Declined, Decline, Step::Unchanged),
            (Confirmed, Decline, Step::Refused),
            (Expired, Decline, Step::Refused),
            (Requested, Expire, Step::To(Expired)),
            (Confirmed, Expire, Step::To(Expired)),
            (Expired, Expire, Step::Unchanged),
            (Declined, Expire, Step::Refused),
            (Expired, Renew, Step::To(Confirmed)),
            (Requested, Renew, Step::Refused),
            (Confirmed, Renew, Step::Refused),
            (Declined, Renew, Step::Refused),
            (Expired, RenewUnapproved, Step::To(Requested)),
            (Requested, RenewUnapproved, Step::Refused),
            (Lapsed, RenewUnapproved, Step::Refused),
            (Lapsed, Renew, Step::Refused),
            (Requested, Lapse, Step::To(Lapsed)),
            (Lapsed, Lapse, Step::Unchanged),
            (Confirmed, Lapse, Step::Refused),
            (Expired, Lapse, Step::Refused),
            (Lapsed, Approve, Step::Refused),
            (Lapsed, Decline, Step::Refused),
            (Lapsed, Expire, Step::Refused),
        ];
        for (from, action, outcome) in table {
            assert_eq!(step(from, action), outcome, "{from} {action:?}");
            // Whatever a step leads to, only requested/confirmed hold the slot.
            if let Step::To(to) = outcome {
                assert_eq!(to.holds_slot(), matches!(to, Requested | Confirmed));
            }
        }
    }
}
