//! Demo data, so `parkmate serve` on an empty database is usable at once: an admin, two owners
//! with a lot each (some slots with car wash), two drivers and an employee. Development only; the
//! server has a switch to turn it off.

use parkmate_db::{accounts, lots};
use parkmate_protocol::Role;

use crate::{DemoAccount, Domain, DomainError, Email, Name, Password};

/// (name, email, password, role). The passwords are public by design: this is demo data.
const ACCOUNTS: [(&str, &str, &str, Role); 6] = [
    (
        "Ada Admin",
        "admin@parkmate.test",
        "admin-demo-123",
        Role::Admin,
    ),
    (
        "Olga Owner",
        "olga@parkmate.test",
        "owner-demo-123",
        Role::Owner,
    ),
    (
        "Otto Owner",
        "otto@parkmate.test",
        "owner-demo-123",
        Role::Owner,
    ),
    (
        "Dana Driver",
        "dana@parkmate.test",
        "driver-demo-123",
        Role::User,
    ),
    (
        "Dev Driver",
        "dev@parkmate.test",
        "driver-demo-123",
        Role::User,
    ),
    (
        "Emil Employee",
        "emil@parkmate.test",
        "employee-demo-123",
        Role::Employee,
    ),
];

fn accounts() -> Vec<DemoAccount> {
    ACCOUNTS
        .iter()
        .map(|(name, email, password, role)| DemoAccount {
            name: (*name).into(),
            email: (*email).into(),
            password: (*password).into(),
            role: *role,
        })
        .collect()
}

impl Domain {
    /// Seeds the demo data if the database has no users yet. Answers the demo accounts when the
    /// database holds them (seeded now or at an earlier start), `None` when it holds real users.
    ///
    /// One transaction, so a crash never leaves half the demo behind, and on PostgreSQL under an
    /// advisory lock, so nodes starting together on one empty database seed it once: the others
    /// wait, then find the users and answer the accounts.
    pub async fn seed_demo(&self) -> Result<Option<Vec<DemoAccount>>, DomainError> {
        if accounts::count_users(&mut self.read().await?).await? > 0 {
            return self.seeded_accounts().await;
        }
        // Hashing is tens of milliseconds of CPU each: before the transaction, not inside it.
        let mut hashed = Vec::with_capacity(ACCOUNTS.len());
        for (name, email, password, role) in ACCOUNTS {
            let hash = crate::accounts::hash_password(Password::parse(password)?).await?;
            hashed.push((Name::parse(name)?, Email::parse(email)?, hash, role));
        }
        let now = self.now();
        let mut tx = self.begin().await?;
        tx.lock_seeding().await?;
        if accounts::count_users(&mut tx).await? > 0 {
            // Another node seeded (or someone registered) while we hashed.
            drop(tx);
            return self.seeded_accounts().await;
        }
        let mut ids = Vec::with_capacity(hashed.len());
        for (name, email, hash, role) in &hashed {
            ids.push(
                accounts::insert_user(&mut tx, name.as_str(), email.as_str(), hash, *role, now)
                    .await?,
            );
        }
        let (olga, otto, emil) = (ids[1], ids[2], ids[5]);
        let central = lots::insert_lot(
            &mut tx,
            olga,
            "Central Garage",
            250,
            &[
                (1, true),
                (2, true),
                (3, false),
                (4, false),
                (5, false),
                (6, false),
            ],
        )
        .await?;
        lots::insert_lot(
            &mut tx,
            otto,
            "Harbour Park",
            180,
            &[(1, true), (2, false), (3, false), (4, false)],
        )
        .await?;
        // Seeded directly: event 10 is for assignments made by an admin, not for demo set-up.
        lots::insert_lot_employee(&mut tx, central, emil, now).await?;
        tx.commit().await?;
        tracing::info!("seeded demo data");
        Ok(Some(accounts()))
    }

    /// The demo accounts if the database holds them, `None` when it holds real users only.
    async fn seeded_accounts(&self) -> Result<Option<Vec<DemoAccount>>, DomainError> {
        let seeded = accounts::user_by_email(&mut self.read().await?, ACCOUNTS[0].1)
            .await?
            .is_some();
        Ok(seeded.then(accounts))
    }
}
