//! The mount plan: every mount the sandbox makes, computed as data from the spec so that
//! it can be tested without root, then carried out by [`super::run`].

use std::path::PathBuf;

use super::spec::SandboxSpec;

/// One step of assembling the sandbox's file system, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// Make every mount private, so nothing propagates back to the host.
    PrivateRoot,
    /// overlayfs: lower directories (topmost first), upper, work, target.
    Overlay {
        /// Lower directories, topmost first (overlayfs order).
        lowers: Vec<PathBuf>,
        /// The upper directory.
        upper: PathBuf,
        /// The work directory.
        work: PathBuf,
        /// Where to mount it.
        target: PathBuf,
        /// Read `user.overlay.*` attributes (a user namespace cannot use `trusted.`).
        userxattr: bool,
        /// Mount `volatile` (no sync of the upper directory at the end).
        volatile: bool,
    },
    /// A bind mount (of a directory or a file), read-only when asked. Every bind but the
    /// safe device nodes of `/dev` is remounted `nodev`, so a device node made on a
    /// writable mount (a cache, a volume) opens nothing.
    Bind {
        /// What to mount.
        source: PathBuf,
        /// Where.
        target: PathBuf,
        /// Remount read-only.
        readonly: bool,
        /// The source is a file (the target is made as an empty file).
        file: bool,
        /// Keep device access (only the device nodes of [`DEVICES`]).
        device: bool,
    },
    /// Hide a path of `/proc` or `/sys`: `/dev/null` over a file, an empty read-only tmpfs
    /// over a directory; skipped when the path does not exist.
    Mask(PathBuf),
    /// Make a path of `/proc` read-only (bound onto itself, remounted read-only); skipped
    /// when the path does not exist.
    ReadOnly(PathBuf),
    /// `proc` for the new PID namespace.
    Proc(PathBuf),
    /// A tmpfs with these options.
    Tmpfs(PathBuf, String),
    /// A new `devpts` instance.
    Devpts(PathBuf),
    /// The POSIX message queues of the sandbox's IPC namespace, as Docker and BuildKit
    /// mount them at `/dev/mqueue`.
    Mqueue(PathBuf),
    /// `sysfs`, read-only (skipped where the kernel refuses).
    Sysfs(PathBuf),
    /// A symbolic link to make.
    Symlink {
        /// The link's target text.
        target: String,
        /// The link's path.
        path: PathBuf,
    },
    /// `pivot_root` into the new root and drop the old one.
    PivotRoot(PathBuf),
}

/// The device nodes bind-mounted from the host into `/dev`.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Paths hidden from the command: Docker 26's default masked paths, plus
/// `/proc/interrupts`, which newer Docker releases mask too (it lists the host's devices
/// and their counters).
pub const MASKED_PATHS: &[&str] = &[
    "proc/asound",
    "proc/acpi",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths of `/proc` the command may read but not write, as in Docker's default.
pub const READONLY_PATHS: &[&str] =
    &["proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger"];

/// The most lower directories overlayfs stacks (the kernel's `OVL_MAX_STACK`).
pub const MAX_LAYERS: usize = 500;

/// Refuses, up front, a layer stack deeper than overlayfs takes.
pub fn check_depth(spec: &SandboxSpec) -> Result<(), String> {
    let stacks = std::iter::once(&spec.lowers).chain(spec.layer_mounts.iter().map(|m| &m.lowers));
    for stack in stacks {
        let n = overlay_lowers(stack).len();
        if n > MAX_LAYERS {
            return Err(format!(
                "the image has {n} distinct layers, and overlayfs stacks at most {MAX_LAYERS} (rbuild does not merge layers yet): squash the image, or build it with fewer steps"
            ));
        }
    }
    Ok(())
}

/// The lower directories of an overlay for a layer stack given lowest first: topmost
/// first, as overlayfs takes them, and each directory once. An image may repeat a layer
/// (two empty layers, the same RUN twice), and overlayfs refuses a directory given twice.
/// Keeping only a layer's topmost place changes nothing: every entry, whiteout or opaque
/// folder the lower copy has, the upper copy has too, and it is found first.
pub fn overlay_lowers(lowers: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    lowers.iter().rev().filter(|p| seen.insert(*p)).cloned().collect()
}

/// The file of the sandbox's generated `/etc` folder that holds apt's configuration for
/// the download cache (mounted at [`crate::downloads::proxy::APT_CONFIG`]).
pub const APT_CONF: &str = "apt.conf";

/// Whether a RUN's apt is pointed at the download cache's proxy: the cache is on and the
/// command has a network (the default one, or the host's).
pub fn proxied(spec: &SandboxSpec) -> bool {
    spec.download_cache.is_some() && spec.network != super::Network::None
}

/// Computes the mount plan for a spec. `etc_dir` holds the generated `hosts`,
/// `resolv.conf` and `hostname` files; `rootless` when the sandbox runs in a user
/// namespace.
pub fn mount_plan(spec: &SandboxSpec, etc_dir: &std::path::Path, rootless: bool) -> Vec<MountStep> {
    let root = spec.merged();
    let stacked = if spec.copy_root {
        // The layers were copied into the root beforehand: it only needs to be a mount
        // point, for pivot_root.
        MountStep::Bind {
            source: root.clone(),
            target: root.clone(),
            readonly: false,
            file: false,
            device: false,
        }
    } else {
        MountStep::Overlay {
            // An image without layers (FROM scratch): one empty lower directory, as
            // overlayfs needs one.
            lowers: if spec.lowers.is_empty() {
                vec![spec.empty_lower()]
            } else {
                overlay_lowers(&spec.lowers)
            },
            upper: spec.upper(),
            work: spec.work(),
            target: root.clone(),
            userxattr: rootless,
            volatile: spec.throwaway_upper,
        }
    };
    let mut steps = vec![
        MountStep::PrivateRoot,
        stacked,
        MountStep::Proc(root.join("proc")),
        MountStep::Tmpfs(root.join("dev"), "mode=755,size=65536k".into()),
    ];
    for dev in DEVICES {
        steps.push(MountStep::Bind {
            source: PathBuf::from("/dev").join(dev),
            target: root.join("dev").join(dev),
            readonly: false,
            file: true,
            device: true,
        });
    }
    steps.push(MountStep::Devpts(root.join("dev/pts")));
    let shm_kib = spec.extras.shm_size.map_or(65536, |b| b.div_ceil(1024).max(1));
    steps.push(MountStep::Tmpfs(root.join("dev/shm"), format!("mode=1777,size={shm_kib}k")));
    steps.push(MountStep::Mqueue(root.join("dev/mqueue")));
    for (target, path) in [
        ("pts/ptmx", "dev/ptmx"),
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ] {
        steps.push(MountStep::Symlink { target: target.into(), path: root.join(path) });
    }
    steps.push(MountStep::Sysfs(root.join("sys")));
    for path in READONLY_PATHS {
        steps.push(MountStep::ReadOnly(root.join(path)));
    }
    for path in MASKED_PATHS {
        steps.push(MountStep::Mask(root.join(path)));
    }
    steps.extend(generated_files(spec, etc_dir, &root));
    for v in &spec.volumes {
        // Anything but a directory (a file, a socket) is mounted on an empty file.
        let file = !v.host.is_dir();
        steps.push(MountStep::Bind {
            source: v.host.clone(),
            target: root.join(v.target.trim_start_matches('/')),
            readonly: v.readonly,
            file,
            device: false,
        });
    }
    for m in &spec.layer_mounts {
        let merged = m.dir.join("merged");
        // Copied there beforehand when the root is.
        if !spec.copy_root {
            steps.push(MountStep::Overlay {
                lowers: overlay_lowers(&m.lowers),
                upper: m.dir.join("upper"),
                work: m.dir.join("work"),
                target: merged.clone(),
                userxattr: rootless,
                // A mount's upper directory is thrown away with the run.
                volatile: true,
            });
        }
        steps.push(MountStep::Bind {
            source: merged.join(&m.source),
            target: root.join(m.target.trim_start_matches('/')),
            readonly: m.readonly,
            file: m.file,
            device: false,
        });
    }
    for t in &spec.tmpfs {
        let mut options = "mode=1777".to_string();
        if let Some(size) = t.size {
            options.push_str(&format!(",size={size}"));
        }
        steps.push(MountStep::Tmpfs(root.join(t.target.trim_start_matches('/')), options));
    }
    steps.push(MountStep::PivotRoot(root));
    steps
}

/// The binds of the files rbuild writes for the sandbox: `/etc/hosts`, `resolv.conf`,
/// `hostname`, and apt's configuration for the download cache.
fn generated_files(
    spec: &SandboxSpec,
    etc_dir: &std::path::Path,
    root: &std::path::Path,
) -> Vec<MountStep> {
    let mut steps = Vec::new();
    for name in ["hosts", "resolv.conf", "hostname"] {
        steps.push(MountStep::Bind {
            source: etc_dir.join(name),
            target: root.join("etc").join(name),
            readonly: false,
            file: true,
            device: false,
        });
    }
    if proxied(spec) {
        steps.push(MountStep::Bind {
            source: etc_dir.join(APT_CONF),
            target: root.join(crate::downloads::proxy::APT_CONFIG.trim_start_matches('/')),
            readonly: true,
            file: true,
            device: false,
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::spec::{LayerMount, Network, TmpfsMount, Volume};

    #[test]
    fn a_repeated_layer_is_stacked_once_at_its_topmost_place() {
        let l = |n: &str| PathBuf::from(format!("/s/{n}"));
        assert_eq!(
            overlay_lowers(&[l("a"), l("b"), l("a"), l("c"), l("c")]),
            [l("c"), l("a"), l("b")],
            "topmost first; a's and c's lower copies dropped"
        );
    }

    #[test]
    fn plan_order_and_content() {
        let spec = SandboxSpec {
            lowers: vec!["/s/l1".into(), "/s/l2".into()],
            run_dir: "/r".into(),
            args: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            hostname: "h".into(),
            network: Network::None,
            volumes: vec![Volume {
                host: "/data".into(),
                target: "/mnt/data".into(),
                readonly: true,
            }],
            limits: Default::default(),
            tty: false,
            layer_mounts: vec![LayerMount {
                lowers: vec!["/s/a".into(), "/s/b".into()],
                dir: "/r/layers/0".into(),
                source: "app/bin".into(),
                target: "/opt/bin".into(),
                readonly: true,
                file: false,
            }],
            tmpfs: vec![TmpfsMount { target: "/scratch".into(), size: Some(1 << 20) }],
            copy_root: false,
            ports: Vec::new(),
            extras: Default::default(),
            throwaway_upper: false,
            download_cache: None,
        };
        let plan = mount_plan(&spec, std::path::Path::new("/r/etc"), false);
        assert_eq!(plan[0], MountStep::PrivateRoot);
        assert_eq!(
            plan[1],
            MountStep::Overlay {
                lowers: vec!["/s/l2".into(), "/s/l1".into()],
                upper: "/r/upper".into(),
                work: "/r/work".into(),
                target: "/r/merged".into(),
                userxattr: false,
                volatile: false
            },
            "overlayfs lists the top layer first"
        );
        assert!(plan.contains(&MountStep::Proc("/r/merged/proc".into())));
        assert!(plan.contains(&MountStep::Devpts("/r/merged/dev/pts".into())));
        assert!(plan.iter().any(|s| matches!(s, MountStep::Bind { target, readonly: true, .. } if target == std::path::Path::new("/r/merged/mnt/data"))));
        assert_eq!(
            plan.last(),
            Some(&MountStep::PivotRoot("/r/merged".into())),
            "pivot_root comes last"
        );
        let layer_overlay = plan.iter().position(|s| matches!(s, MountStep::Overlay { target, lowers, .. } if target == std::path::Path::new("/r/layers/0/merged") && lowers[0] == std::path::Path::new("/s/b")));
        let layer_bind = plan.iter().position(|s| matches!(s, MountStep::Bind { source, target, readonly: true, .. } if source == std::path::Path::new("/r/layers/0/merged/app/bin") && target == std::path::Path::new("/r/merged/opt/bin")));
        assert!(layer_overlay.is_some() && layer_bind > layer_overlay, "{plan:?}");
        assert!(plan.contains(&MountStep::Tmpfs(
            "/r/merged/scratch".into(),
            "mode=1777,size=1048576".into()
        )));
        let devices = plan
            .iter()
            .filter(|s| matches!(s, MountStep::Bind { source, device: true, .. } if source.starts_with("/dev")))
            .count();
        assert_eq!(devices, DEVICES.len(), "only /dev's safe nodes keep device access");
        assert!(
            plan.iter().all(|s| !matches!(s, MountStep::Bind { device: true, source, .. } if !source.starts_with("/dev"))),
            "volumes, caches and layer mounts are nodev"
        );
        let proc_at = plan.iter().position(|s| matches!(s, MountStep::Proc(_)));
        let masked = plan.iter().position(|s| *s == MountStep::Mask("/r/merged/proc/kcore".into()));
        let readonly =
            plan.iter().position(|s| *s == MountStep::ReadOnly("/r/merged/proc/sys".into()));
        assert!(masked > proc_at && readonly > proc_at, "masks go over the new /proc: {plan:?}");
        // Layers stacked by copying: no overlay, the root bound onto itself.
        let copied = mount_plan(
            &SandboxSpec { copy_root: true, ..spec },
            std::path::Path::new("/r/etc"),
            false,
        );
        assert!(copied.iter().all(|s| !matches!(s, MountStep::Overlay { .. })), "{copied:?}");
        assert!(matches!(&copied[1], MountStep::Bind { source, target, .. } if source == target));
        let sysfs_at = plan.iter().position(|s| matches!(s, MountStep::Sysfs(_)));
        let firmware =
            plan.iter().position(|s| *s == MountStep::Mask("/r/merged/sys/firmware".into()));
        assert!(firmware > sysfs_at, "and over the new /sys");
    }
}
