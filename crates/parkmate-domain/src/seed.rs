//! Demo data, so `parkmate serve` on an empty database is usable at once: an admin, two owners
//! with a lot each (some slots with car wash), two drivers and an employee. Development only; the
//! server has a switch to turn it off.

use parkmate_protocol::Role;

use crate::{DemoAccount, Domain, DomainError, Email, Name, Password, sqlite};

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
    pub async fn seed_demo(&self) -> Result<Option<Vec<DemoAccount>>, DomainError> {
        let users = {
            let mut conn = self.writer().acquire().await?;
            sqlite::count_users(&mut conn).await?
        };
        if users > 0 {
            let mut conn = self.writer().acquire().await?;
            let seeded = sqlite::user_by_email(&mut conn, ACCOUNTS[0].1)
                .await?
                .is_some();
            return Ok(seeded.then(accounts));
        }
        let mut ids = Vec::with_capacity(ACCOUNTS.len());
        for (name, email, password, role) in ACCOUNTS {
            let user = self
                .create_user(
                    Name::parse(name)?,
                    Email::parse(email)?,
                    Password::parse(password)?,
                    role,
                )
                .await?;
            ids.push(user.id);
        }
        let (olga, otto, emil) = (ids[1], ids[2], ids[5]);
        let central = self
            .create_lot(
                olga,
                Name::parse("Central Garage")?,
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
        self.create_lot(
            otto,
            Name::parse("Harbour Park")?,
            180,
            &[(1, true), (2, false), (3, false), (4, false)],
        )
        .await?;
        // Seeded directly: event 10 is for assignments made by an admin, not for demo set-up.
        let mut conn = self.writer().acquire().await?;
        sqlite::insert_lot_employee(&mut conn, central.id, emil, self.now()).await?;
        tracing::info!("seeded demo data");
        Ok(Some(accounts()))
    }
}
