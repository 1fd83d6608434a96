//! What the data-platform library's peer data left in a peer relation of
//! the reference charms, read by both charms when they take over a
//! deployment (`docs/takeover.md`): older revisions kept the URI of the
//! application secret in the peer application bag (`internal-secret`)
//! instead of finding it by label, and a removed secret field holds `None`.

use charm::secret::{Revision, SecretRef};
use charm::{Databag, Hook, SecretContent, SecretId};

/// Peer application bag: the URI of the application secret, as older
/// revisions of the reference charms kept it.
pub const INTERNAL_SECRET: &str = "internal-secret";
/// The value the reference charms write in a secret field they remove.
pub const DELETED: &str = "None";

/// The content of the secret whose URI `bag` keeps under
/// [`INTERNAL_SECRET`]; `None` when the bag has no such key, or the secret
/// cannot be read (gone, or the value is no secret URI).
pub fn internal_secret(hook: &mut Hook<'_>, bag: &Databag) -> Option<SecretContent> {
    let id = SecretId::parse(bag.get(INTERNAL_SECRET)?).ok()?;
    hook.secret(&SecretRef::Id(id, None), Revision::Peek).ok()
}

/// `content` without the fields the reference removed (valued [`DELETED`]).
pub fn without_deleted(content: &SecretContent) -> SecretContent {
    content
        .iter()
        .filter(|(_, v)| *v != DELETED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
