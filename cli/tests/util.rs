//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use assert_cmd::cargo::CommandCargoExt;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `rbuild` binary under test.
pub fn rbuild() -> Command {
    Command::cargo_bin("rbuild").unwrap_or_else(|e| panic!("the rbuild binary: {e}"))
}

/// Fails the test unless it runs as root (sandboxes need namespaces and overlayfs; the
/// harness makes users). CI runs the tests as root.
pub fn require_root() {
    assert!(
        rbuild_builder::users::is_root(),
        "this test needs root (namespaces, overlayfs, test users); CI runs it as root"
    );
}

/// Runs `rbuild --root ROOT ARGS...`.
pub fn rbuild_in(root: &Path, args: &[&str]) -> Output {
    rbuild()
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running rbuild: {e}"))
}

/// Like [`rbuild_in`], but the command must succeed; returns its standard output.
pub fn ok(root: &Path, args: &[&str]) -> String {
    let out = rbuild_in(root, args);
    assert!(
        out.status.success(),
        "rbuild {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails the test with the reason when a tool the test needs is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "this test needs `{tool}` (Debian package {package}); .ci/run installs it");
}

/// The busybox base image made by `testdata/images/make-busybox.sh` with umoci and
/// skopeo, made once per test run.
pub fn busybox_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_tool("busybox", "busybox-static");
        require_tool("umoci", "umoci");
        require_tool("skopeo", "skopeo");
        let dir = std::env::temp_dir().join(format!("rbuild-test-images-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(repo().join("testdata/images/make-busybox.sh"))
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| panic!("make-busybox.sh: {e}"));
        assert!(status.success(), "testdata/images/make-busybox.sh failed");
        dir
    })
}

/// Unpacks a tar archive into a new directory `dir` with the system's tar.
pub fn untar(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tar -xf {}", archive.display());
}

/// Packs the contents of `dir` into the tar archive `archive` with the system's tar.
pub fn tar_dir(dir: &Path, archive: &Path) {
    let ok = Command::new("tar")
        .arg("-cf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "tar -cf {}", archive.display());
}

/// Copies a directory tree (with `cp -a`).
pub fn untar_copy(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg("-a").arg(from).arg(to).status().is_ok_and(|s| s.success());
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// A local user for rootless tests, made when missing (needs root); its uid and gid.
pub fn test_user(name: &str) -> (u32, u32) {
    if Command::new("id").arg(name).output().map(|o| !o.status.success()).unwrap_or(true) {
        let made = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/false", name])
            .status()
            .unwrap_or_else(|e| panic!("useradd: {e}"));
        assert!(made.success(), "useradd {name}");
    }
    let id = |flag: &str| -> u32 {
        let out =
            Command::new("id").args([flag, name]).output().unwrap_or_else(|e| panic!("id: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("id {flag} {name}: {e}"))
    };
    (id("-u"), id("-g"))
}

/// What a rootless test needs: a local user (see [`test_user`]), a world-readable work
/// directory holding a copy of the rbuild binary and of the busybox OCI archive (the
/// user cannot reach the build tree under /root), and a store the user owns.
pub struct AsUser {
    pub uid: u32,
    pub gid: u32,
    pub work: tempfile::TempDir,
    pub binary: PathBuf,
    pub archive: PathBuf,
    pub store: PathBuf,
    /// Whether rbuild uses the user's subordinate ids (else `RBUILD_SUBIDS=off`: the
    /// sandbox's user namespace maps the user alone).
    pub subids: bool,
}

impl AsUser {
    /// Makes the user and the work directory (needs root); rbuild goes without the
    /// user's subordinate ids.
    pub fn new(user: &str) -> AsUser {
        Self::make(user, false)
    }

    /// As [`AsUser::new`], but rbuild runs in a user namespace of the user's subordinate
    /// ids (useradd gives a new user a range; newuidmap must be installed).
    pub fn with_subids(user: &str) -> AsUser {
        let u = Self::make(user, true);
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{user}:"))),
                "{file} gives {user} no range (useradd adds one when SUB_UID_COUNT is set in /etc/login.defs)"
            );
        }
        assert!(Path::new("/usr/bin/newuidmap").exists(), "needs newuidmap (package uidmap)");
        u
    }

    fn make(user: &str, subids: bool) -> AsUser {
        use std::os::unix::fs::PermissionsExt;
        let (uid, gid) = test_user(user);
        let work = tempfile::tempdir().unwrap();
        std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let binary = work.path().join("rbuild");
        copy_executable(&assert_cmd::cargo::cargo_bin("rbuild"), &binary);
        let archive = work.path().join("busybox.tar");
        std::fs::copy(busybox_images().join("busybox-oci.tar"), &archive).unwrap();
        let store = work.path().join("store");
        std::fs::create_dir(&store).unwrap();
        std::os::unix::fs::chown(&store, Some(uid), Some(gid)).unwrap();
        AsUser { uid, gid, work, binary, archive, store, subids }
    }

    /// Makes `cmd` run as the user, with HOME at the work directory.
    pub fn apply(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.uid(self.uid).gid(self.gid).env("HOME", self.work.path());
        if self.subids {
            cmd.env_remove("RBUILD_SUBIDS");
        } else {
            cmd.env("RBUILD_SUBIDS", "off");
        }
    }

    /// `rbuild --root STORE ARGS` to run as the user, with HOME at the work directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.store).args(args);
        self.apply(&mut cmd);
        cmd
    }

    /// Runs [`AsUser::command`] to its end.
    pub fn rbuild(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

/// Copies a program that is to be executed, by another process: a file this process held
/// open for writing would be inherited by any child another test thread forks at that moment,
/// and executing the copy while that child lives fails with "Text file busy" (seen in CI).
pub fn copy_executable(from: &Path, to: &Path) {
    let copied = Command::new("cp").arg(from).arg(to).status().unwrap();
    assert!(copied.success(), "cp {} {} failed", from.display(), to.display());
}

/// A new store holding busybox (loaded from the test image archive).
pub fn store_with_busybox() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let archive = busybox_images().join("busybox-oci.tar");
    ok(root.path(), &["load", "-q", "-i", archive.to_str().unwrap()]);
    root
}
