//! Workload images: the root filesystem each container's system directories
//! come from. A charm names each container's image as an `oci-image`
//! resource; at deploy, `--resource <name>=<dir>` gives one, or else the
//! resource's `upstream-source` is looked up in the controller's image store
//! (`<store>/<image>/rootfs`, as `scripts/build-images` lays it out, its tag
//! in `<store>/<image>/tag`), as Juju pulls it from a registry. A container
//! with no image runs on the host's system directories.

use super::{Controller, ControllerError};
use charm::metadata::CharmMeta;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `registry/path/name:tag` (or `name@digest`) split into the image's name
/// and its tag or digest (`latest` when none is given).
pub fn image_reference(source: &str) -> (&str, &str) {
    let last = source.rsplit('/').next().unwrap_or(source);
    last.split_once('@')
        .or_else(|| last.split_once(':'))
        .unwrap_or((last, "latest"))
}

/// A root filesystem given as itself or as the directory that holds it
/// (`target/images/pgbouncer` for `target/images/pgbouncer/rootfs`).
fn root_filesystem(dir: &Path) -> Option<PathBuf> {
    [dir.join("rootfs"), dir.to_path_buf()]
        .into_iter()
        .find(|d| d.join("usr").is_dir() && d.join("etc/passwd").is_file())
        .and_then(|d| std::fs::canonicalize(d).ok())
}

impl Controller {
    /// Where deploy finds the images a charm's resources name by their
    /// `upstream-source`; without a store, containers run on the host's
    /// system directories unless `--resource` gives their image.
    pub fn use_image_store(&mut self, store: &Path) {
        self.image_store = Some(store.to_path_buf());
    }

    /// The root filesystem of each of the charm's `oci-image` resources:
    /// the one `given` names, or the store's image of its `upstream-source`.
    /// A resource the charm does not have, a directory that holds no root
    /// filesystem, or an image the store lacks is refused.
    pub(super) fn resolve_images(
        &self,
        app: &str,
        meta: &CharmMeta,
        given: &[(String, PathBuf)],
    ) -> Result<BTreeMap<String, PathBuf>, ControllerError> {
        let refuse = |message: String| ControllerError::Resource {
            app: app.to_string(),
            message,
        };
        let mut images = BTreeMap::new();
        for (name, dir) in given {
            match meta.resources.get(name) {
                Some(spec) if spec.kind == "oci-image" => {}
                Some(spec) => {
                    return Err(refuse(format!(
                        "{name:?} is a {} resource, not an image",
                        spec.kind
                    )))
                }
                None => return Err(refuse(format!("the charm has no resource {name:?}"))),
            }
            let root = root_filesystem(dir).ok_or_else(|| {
                refuse(format!(
                    "{name:?}: {} holds no root filesystem (usr/ and etc/passwd)",
                    dir.display()
                ))
            })?;
            images.insert(name.clone(), root);
        }
        let Some(store) = &self.image_store else {
            return Ok(images);
        };
        for (name, spec) in &meta.resources {
            if spec.kind != "oci-image" || images.contains_key(name) {
                continue;
            }
            let Some(source) = &spec.upstream_source else {
                continue;
            };
            let (image, tag) = image_reference(source);
            let dir = store.join(image);
            let stored_tag = std::fs::read_to_string(dir.join("tag")).unwrap_or_default();
            let root = root_filesystem(&dir).filter(|_| stored_tag.trim() == tag);
            let root = root.ok_or_else(|| {
                refuse(format!(
                    "{name:?}: no image {image}:{tag} in {} (build it with \
                     `scripts/build-images {image}`, or give one with --resource {name}=<dir>)",
                    store.display()
                ))
            })?;
            images.insert(name.clone(), root);
        }
        Ok(images)
    }

    /// The root filesystem of `app`'s `container`, if it has its own.
    pub(super) fn container_image(&self, app: &str, container: &str) -> Option<PathBuf> {
        let a = self.model.applications.get(app)?;
        let resource = a.files.meta.container_resource(container)?;
        a.images.get(resource).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_its_image_and_tag() {
        assert_eq!(
            image_reference("localhost:32000/pgbouncer:1.24-bookworm"),
            ("pgbouncer", "1.24-bookworm")
        );
        assert_eq!(image_reference("postgres"), ("postgres", "latest"));
        assert_eq!(
            image_reference("ghcr.io/a/b/etcd@sha256:00"),
            ("etcd", "sha256:00")
        );
    }
}
