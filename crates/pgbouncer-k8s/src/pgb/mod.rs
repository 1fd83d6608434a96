//! PgBouncer itself: its version, configuration files, pools, reloads and pauses.

pub mod ini;
pub mod pause;
pub mod peering;
pub mod pools;
pub mod reload;
pub mod userlist;
pub mod version;

pub use ini::{Layout, SharedConfig};
pub use version::PgbVersion;
