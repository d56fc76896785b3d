//! The executor of container isolation: each RUN in the container's own root file system
//! (see [`crate::sandbox::in_place`]), which it first makes the step's.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::Executor;
use crate::error::{Error, Result};
use crate::sandbox::SandboxSpec;
use crate::snapshot::stack::{apply_snapshot, materialize, KeepList, Scan};
use crate::snapshot::WhiteoutMode;

/// Runs every RUN in `/` of the container rbuild runs in, one at a time. Before a step,
/// `/` is made to hold the step's layers (only the layers added since the last step when
/// it holds that step's already, else all of them after everything but the kept paths is
/// removed); after it, what changed is written to the step's upper directory as a
/// snapshot. The kept paths (mount points, rbuild's own files, the store, the context)
/// are never touched.
#[derive(Debug)]
pub struct InPlaceExecutor {
    root: PathBuf,
    keep: Vec<PathBuf>,
    whiteouts: WhiteoutMode,
    state: Mutex<Option<Held>>,
}

/// What `/` holds: the snapshots (as device and inode numbers, which stay when the store
/// renames a step's upper directory into its snapshot), and its scan.
type Held = (Vec<(u64, u64)>, Scan);

impl InPlaceExecutor {
    /// An executor over `/`, leaving `keep` (absolute paths) alone; snapshots it writes
    /// record whiteouts as `whiteouts` says (the store's kind).
    pub fn new(keep: &[PathBuf], whiteouts: WhiteoutMode) -> InPlaceExecutor {
        let keep = keep
            .iter()
            .filter_map(|p| p.strip_prefix("/").ok())
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .collect();
        InPlaceExecutor { root: PathBuf::from("/"), keep, whiteouts, state: Mutex::new(None) }
    }

    fn ids(paths: &[PathBuf]) -> Result<Vec<(u64, u64)>> {
        paths
            .iter()
            .map(|p| {
                let m = std::fs::metadata(p).map_err(Error::io("inspecting", p.clone()))?;
                Ok((m.dev(), m.ino()))
            })
            .collect()
    }
}

impl Executor for InPlaceExecutor {
    fn run(&self, spec: &SandboxSpec, output: &mut dyn Write) -> Result<i32> {
        let mut state = self.state.lock().map_err(|_| Error::Panicked("a RUN in place"))?;
        let upper = spec.upper();
        std::fs::create_dir_all(&upper).map_err(Error::io("creating", upper.clone()))?;
        let mut keep_paths = self.keep.clone();
        keep_paths.extend(crate::sandbox::in_place::mount_targets(spec));
        let keep = KeepList::new(keep_paths);
        let ids = Self::ids(&spec.lowers)?;
        // `/` as the step's layers make it.
        let held = state.take();
        let scan = match held {
            Some((done, scan)) if ids.starts_with(&done) => {
                if done.len() == ids.len() {
                    scan
                } else {
                    for lower in &spec.lowers[done.len()..] {
                        apply_snapshot(lower, &self.root, &keep)?;
                    }
                    Scan::take(&self.root, &keep)?
                }
            }
            _ => {
                materialize(&spec.lowers, &self.root, &keep)?;
                Scan::take(&self.root, &keep)?
            }
        };
        if spec.network == crate::sandbox::Network::None {
            let _ = writeln!(
                output,
                "rbuild: warning: the container isolation cannot take the network away: this \
                 step has the container's network (--network=none is not enforced)"
            );
        }
        let code = crate::sandbox::in_place::run_in_place(spec, &self.root, output)?;
        let now = scan.changes_into(&self.root, &keep, &upper, self.whiteouts)?;
        // The mount points a sandbox leaves in an image that lacks them (as BuildKit's
        // runc does); here they are the container's, never scanned.
        let view = super::rootfs::RootfsView::new(spec.lowers.clone());
        for name in ["proc", "sys", "dev"] {
            if view.entry(&[name.into()]).is_none() {
                let dir = upper.join(name);
                std::fs::create_dir_all(&dir).map_err(Error::io("creating", dir.clone()))?;
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .map_err(Error::io("setting the mode of", dir))?;
            }
        }
        if code == 0 {
            let mut done = ids;
            done.extend(Self::ids(std::slice::from_ref(&upper))?);
            *state = Some((done, now));
        }
        Ok(code)
    }
}
