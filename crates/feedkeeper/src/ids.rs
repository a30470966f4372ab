//! Typed ids, so a user id can never be passed where a connection id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A dashboard user.
    UserId
);
id_type!(
    /// A connected Instagram account.
    ConnectionId
);
id_type!(
    /// A connect or reconnect link handed to a client.
    LinkId
);
id_type!(
    /// An incident: a period in which a person must act on a connection.
    IncidentId
);
id_type!(
    /// A widget (inside the dashboard; the public address uses a random id).
    WidgetId
);
