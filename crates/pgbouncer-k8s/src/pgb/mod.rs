//! PgBouncer itself: its version, configuration files, pools and reloads.

pub mod ini;
pub mod peering;
pub mod pools;
pub mod reload;
pub mod userlist;
pub mod version;

pub use ini::{Layout, SharedConfig};
pub use version::PgbVersion;
