//! Lots: creating them (seed data, tests), listing them, and assigning employees (event 10).

use parkmate_db::{accounts, lots};
use parkmate_protocol::Role;

use crate::model::{Actor, Lot};
use crate::types::Name;
use crate::{Domain, DomainError, events};

impl Domain {
    /// Creates a lot with numbered slots `(number, car_wash)` (seed data and tests; no endpoint yet).
    pub async fn create_lot(
        &self,
        owner_id: i64,
        name: Name,
        price_per_hour_cents: i64,
        slots: &[(i64, bool)],
    ) -> Result<Lot, DomainError> {
        let mut tx = self.begin().await?;
        let id = lots::insert_lot(
            &mut tx,
            owner_id,
            name.as_str(),
            price_per_hour_cents,
            slots,
        )
        .await?;
        tx.commit().await?;
        self.lot(id).await
    }

    /// Every lot (they are public to signed-in users), or only the caller's own when `mine`.
    pub async fn lots(&self, actor: Actor, mine: bool) -> Result<Vec<Lot>, DomainError> {
        let owner = mine.then_some(actor.user_id);
        Ok(lots::lots(&mut self.read().await?, None, owner, self.now()).await?)
    }

    pub async fn lot(&self, id: i64) -> Result<Lot, DomainError> {
        lots::lots(&mut self.read().await?, Some(id), None, self.now())
            .await?
            .pop()
            .ok_or(DomainError::NotFound("lot"))
    }

    /// Assigns an employee to a lot (admins only). Event 10 to the lot's owner, once: assigning
    /// someone who already works there changes nothing and reports nothing.
    pub async fn assign_employee(
        &self,
        actor: Actor,
        lot_id: i64,
        employee_id: i64,
    ) -> Result<Lot, DomainError> {
        if actor.role != Role::Admin {
            return Err(DomainError::Forbidden("only admins can assign employees"));
        }
        let mut tx = self.begin().await?;
        let lot = lots::lots(&mut tx, Some(lot_id), None, self.now())
            .await?
            .pop()
            .ok_or(DomainError::NotFound("lot"))?;
        let employee = accounts::user(&mut tx, employee_id)
            .await?
            .ok_or(DomainError::NotFound("employee"))?;
        if employee.role != Role::Employee {
            return Err(DomainError::NotAnEmployee(employee_id));
        }
        let mut notes = Vec::new();
        if lots::insert_lot_employee(&mut tx, lot_id, employee_id, self.now()).await? {
            notes.push(events::employee_assigned(
                lot.id,
                lot.owner_id,
                employee.id,
                &employee.name,
            ));
        }
        self.commit_with(tx, &notes).await?;
        self.lot(lot_id).await
    }
}
