//! Patroni's role changes, reported by the workload: its callback records the
//! [`ROLE_CHANGE_NOTICE`] custom notice, and the charm converges as it does on
//! update-status (the leader refreshes the clients' endpoints, every unit its
//! status). Only the leader may write the clients' endpoints, so a follower also
//! records the notice's last repeat in its peer bag: the leader hears of it as a
//! peer relation-changed.

use crate::flows::{lifecycle, Deps, Findings};
use crate::state;
use crate::workload::{CONTAINER, ROLE_CHANGE_NOTICE};
use charm::event::Notice;
use charm::{BagChanges, Handled, Hook};

/// Whether a notice from `container` reports a role change.
pub fn is_role_change(container: &str, notice: &Notice) -> bool {
    container == CONTAINER && notice.key == ROLE_CHANGE_NOTICE
}

/// postgresql-pebble-custom-notice for [`ROLE_CHANGE_NOTICE`].
pub fn changed(
    hook: &mut Hook<'_>,
    deps: &Deps,
    findings: &mut Findings,
    notice: &Notice,
) -> anyhow::Result<Handled> {
    if !hook.is_leader()? {
        if let Some(peers) = state::peers(hook)? {
            if let Ok(seen) = hook.container(CONTAINER).notice(&notice.id) {
                hook.update_unit_bag(
                    &peers,
                    BagChanges::new().set(state::ROLE_CHANGED, seen.last_repeated),
                )?;
            }
        }
    }
    lifecycle::update_status(hook, deps, findings)
}
