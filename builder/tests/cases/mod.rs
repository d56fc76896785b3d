//! The end-to-end build cases of `testdata/build/`, run through the library: each test
//! copies a case's directory, builds its Dockerfiles with [`engine::build`] into a fresh
//! store whose base image `busybox:latest` comes from a local archive
//! ([`ArchiveSource`]), with a [`RecordingExecutor`] in place of the sandbox. So these
//! need neither root nor a network: what a RUN would write is checked on its recorded
//! spec (command, environment, user, network, mounts), or put in place by a simulated
//! effect; files, owners, modes and configs are read from the image's layers. The shell
//! versions of the same cases (`cli/tests/build.rs`) run the real binary and sandbox.

mod buildkit;
mod copy;
mod meta;
mod runs;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::OnceLock;

use rbuild_builder::archive::{ArchiveFormat, ArchiveSource};
use rbuild_builder::engine::flags::{self, DockerfileInput};
use rbuild_builder::engine::{BuildOptions, BuildResult, Platform, RecordingExecutor};
use rbuild_builder::reference::Reference;
use rbuild_builder::report::{Event, RecordingReporter};
use rbuild_builder::sandbox::{Network, SandboxSpec};
use rbuild_builder::store::Store;

/// The repository, or a copy of its `testdata/build` under `$RBUILD_TESTDATA_ROOT` (for
/// a user who cannot read the checkout, see `testdata/lib-cases-rootless.sh`).
fn repo() -> PathBuf {
    match std::env::var_os("RBUILD_TESTDATA_ROOT") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

/// The base image `busybox:latest` as an OCI archive, made once per test run through the
/// library itself: a root file system of Debian's busybox-static (its applets as links,
/// `root` and `nobody` in `/etc/passwd`) copied `FROM scratch`.
fn base_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "these tests need /bin/busybox (Debian package busybox-static)");
        let dir = std::env::temp_dir().join(format!("rbuild-lib-base-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("ctx/rootfs");
        for d in ["bin", "etc", "tmp", "root"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        std::fs::set_permissions(root.join("root"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        std::fs::write(
            dir.join("ctx/Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD [\"/bin/sh\"]\n",
        )
        .unwrap();
        let store = Store::open(dir.join("store")).unwrap();
        let name: Reference = "busybox:latest".parse().unwrap();
        let mut options = options(&dir.join("ctx"), "Dockerfile");
        options.tags = vec![name.clone()];
        let df = rbuild_builder::parse(&options.dockerfile_text).unwrap();
        let source = ArchiveSource::new(dir.join("none.tar"));
        let exec = RecordingExecutor::default();
        let reporter = RecordingReporter::default();
        let built = rbuild_builder::engine::build(&store, &df, &options, &source, &exec, &reporter)
            .unwrap();
        let image = store.resolve(built.image_id.as_ref()).unwrap();
        let archive = dir.join("busybox-oci.tar");
        rbuild_builder::export::write_archive(
            &store,
            &[(image, vec![name])],
            ArchiveFormat::Oci,
            Some(&archive),
            &mut std::io::sink(),
        )
        .unwrap();
        archive
    })
}

/// Build options as `rbuild build` makes them by default, for the Dockerfile `file` of
/// `context`.
fn options(context: &Path, file: &str) -> BuildOptions {
    let path = context.join(file);
    let dockerfile = DockerfileInput {
        text: std::fs::read_to_string(&path).unwrap(),
        name: file.to_string(),
        path: Some(path),
    };
    BuildOptions { jobs: 2, ..BuildOptions::new(context, dockerfile) }
}

/// One case: a copy of its directory and a store of its own.
pub struct Case {
    /// The copy of the case's directory (the build context).
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
    store: Store,
    /// What RUN steps do to the file system, by the command's text.
    effects: BTreeMap<String, Vec<(String, String)>>,
    /// What every RUN prints.
    pub run_output: Vec<u8>,
    /// How RUNs exit, by the command's text (0 for the others).
    codes: BTreeMap<String, i32>,
    /// Image trees read so far, by image ID (an ID's content never changes).
    trees: std::cell::RefCell<BTreeMap<String, Rc<Tree>>>,
}

/// A file or directory of an image, as its layers give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `f` file, `d` directory, `l` symlink, `h` hard link, `o` other.
    pub kind: char,
    pub uid: u64,
    pub gid: u64,
    /// Permission bits.
    pub mode: u32,
    /// A file's bytes.
    pub data: Vec<u8>,
    /// A link's target.
    pub link: String,
}

/// An image's file system: every path and its entry.
pub type Tree = BTreeMap<String, Entry>;

/// What one build did.
pub struct Built {
    pub result: Result<BuildResult, String>,
    pub events: Vec<Event>,
    pub runs: Vec<SandboxSpec>,
}

impl Built {
    /// Step `n` came from the cache.
    pub fn cached(&self, n: usize) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Cached { number } if *number == n))
    }
    /// Step `n` ran a command.
    pub fn ran(&self, n: usize) -> bool {
        self.events.iter().any(|e| matches!(e, Event::Running { number, .. } if *number == n))
    }
    /// The step texts, as `Step N/M : TEXT` lines, warnings and the error: what the CLI
    /// would have printed, for the checks on messages.
    pub fn output(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            match e {
                Event::Step { number, total, text, .. } => {
                    out += &format!("Step {number}/{total} : {text}\n")
                }
                Event::Triggers { count, .. } => {
                    out += &format!("# Executing {count} build triggers\n")
                }
                Event::Warning(w) => out += &format!("[Warning] {w}\n"),
                _ => {}
            }
        }
        if let Err(e) = &self.result {
            out += e;
        }
        out
    }
    /// The image ID.
    pub fn id(&self) -> String {
        self.result.as_ref().map(|r| r.image_id.to_string()).unwrap_or_default()
    }
    /// The recorded RUN whose command line contains `text`.
    pub fn run_with(&self, text: &str) -> &SandboxSpec {
        self.runs
            .iter()
            .find(|s| s.args.join(" ").contains(text))
            .unwrap_or_else(|| panic!("no RUN with {text:?} among {:?}", self.commands()))
    }
    /// Every recorded command line.
    pub fn commands(&self) -> Vec<String> {
        self.runs.iter().map(|s| s.args.join(" ")).collect()
    }
}

/// Whether `spec`'s environment has `KEY=VALUE`.
pub fn has_env(spec: &SandboxSpec, entry: &str) -> bool {
    spec.env.iter().any(|e| e == entry)
}

impl Case {
    /// A fresh copy of `testdata/build/NAME` and an empty store.
    pub fn new(name: &str) -> Case {
        let _ = base_archive();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("work");
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(repo().join("testdata/build").join(name))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success(), "copying the case {name}");
        Case::at(tmp, dir)
    }

    /// A context of its own: `files` (path, content; a path ending in `/` is an empty
    /// folder) and an empty store.
    pub fn inline(files: &[(&str, &str)]) -> Case {
        let _ = base_archive();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("work");
        for (path, content) in files {
            let p = dir.join(path);
            if path.ends_with('/') {
                std::fs::create_dir_all(&p).unwrap();
                continue;
            }
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        Case::at(tmp, dir)
    }

    /// A case whose context is `dir` (inside `tmp`), with an empty store beside it.
    fn at(tmp: tempfile::TempDir, dir: PathBuf) -> Case {
        let store = Store::open(tmp.path().join("store")).unwrap();
        Case {
            dir,
            _tmp: tmp,
            store,
            effects: BTreeMap::new(),
            run_output: Vec::new(),
            codes: BTreeMap::new(),
            trees: Default::default(),
        }
    }

    /// Writes a file of the context.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join(name), text).unwrap();
    }

    /// Makes every RUN whose command line contains `command` write `path` (in the image)
    /// with `content` (and a newline); `dir:` makes a directory, `symlink:TARGET` a link.
    pub fn effect(&mut self, command: &str, path: &str, content: &str) {
        self.effects
            .entry(command.to_string())
            .or_default()
            .push((path.to_string(), content.to_string()));
    }

    /// Makes every RUN whose command line contains `command` exit with `code`.
    pub fn exit(&mut self, command: &str, code: i32) {
        self.codes.insert(command.to_string(), code);
    }

    /// Builds with `rbuild build`'s flags (`-t`, `-f`, `--target`, `--build-arg`,
    /// `--label`, `--no-cache`, `--platform`, `--allow`, `--network`); the context is the
    /// case's directory.
    pub fn try_build(&self, args: &[&str]) -> Built {
        let mut file = "Dockerfile".to_string();
        let mut context = self.dir.clone();
        let (mut tags, mut build_args, mut labels, mut allow) = (vec![], vec![], vec![], vec![]);
        let (mut target, mut no_cache, mut platform, mut network) = (None, false, None, None);
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = || it.next().map(|v| v.to_string()).unwrap();
            match *a {
                "-t" => tags.push(value()),
                "-f" => file = value(),
                "--target" => target = Some(value()),
                "--build-arg" => build_args.push(value()),
                "--label" => labels.push(value()),
                "--platform" => platform = Some(value()),
                "--allow" => allow.push(value()),
                "--network" => network = Some(value()),
                "--no-cache" => no_cache = true,
                "--context" => context = self.dir.join(value()),
                other => panic!("unknown flag {other}"),
            }
        }
        let mut options = options(&context, &file);
        options.tags = tags.iter().map(|t| t.parse().unwrap()).collect();
        options.build_args = flags::key_values(&build_args, "build argument").unwrap();
        options.source_date_epoch = flags::source_date_epoch(&options.build_args);
        options.labels = flags::key_values(&labels, "label").unwrap();
        options.target = target;
        options.no_cache = no_cache;
        options.allow_host_network = flags::host_network_allowed(&allow).unwrap();
        options.network = match network.as_deref() {
            Some("none") => Network::None,
            Some("host") => Network::Host,
            _ => Network::Private,
        };
        if let Some(p) = platform {
            options.platform = Platform::parse(&p).unwrap();
        }
        let (effects, codes, printed) =
            (self.effects.clone(), self.codes.clone(), self.run_output.clone());
        let exec = RecordingExecutor::new(move |spec, upper, out| {
            let line = spec.args.join(" ");
            out.write_all(&printed)?;
            for (command, writes) in &effects {
                if line.contains(command.as_str()) {
                    for (path, content) in writes {
                        let host = upper.join(path.trim_start_matches('/'));
                        std::fs::create_dir_all(host.parent().unwrap_or(upper))?;
                        if content == "dir:" {
                            std::fs::create_dir_all(host)?;
                        } else if let Some(target) = content.strip_prefix("symlink:") {
                            std::os::unix::fs::symlink(target, host)?;
                        } else {
                            std::fs::write(host, format!("{content}\n"))?;
                        }
                    }
                }
            }
            Ok(codes.iter().find(|(c, _)| line.contains(c.as_str())).map_or(0, |(_, code)| *code))
        });
        let reporter = RecordingReporter::default();
        let source = ArchiveSource::new(base_archive());
        let result = match rbuild_builder::parse(&options.dockerfile_text) {
            Ok(df) => {
                rbuild_builder::engine::build(&self.store, &df, &options, &source, &exec, &reporter)
                    .map_err(|e| rbuild_builder::chain(&e))
            }
            Err(e) => Err(rbuild_parser::render_error(&file, &options.dockerfile_text, &e)),
        };
        Built { result, events: reporter.events(), runs: exec.runs() }
    }

    /// Like [`Case::try_build`], but the build must succeed.
    pub fn build(&self, args: &[&str]) -> Built {
        let built = self.try_build(args);
        if let Err(e) = &built.result {
            panic!("build {args:?} failed: {e}\n{}", built.output());
        }
        built
    }

    /// Like [`Case::try_build`], but the build must fail; returns its output.
    pub fn build_fails(&self, args: &[&str]) -> String {
        let built = self.try_build(args);
        assert!(built.result.is_err(), "build {args:?} should have failed");
        built.output()
    }

    /// The image's file system: every path (absolute) and its entry, the layers applied
    /// in order with their whiteouts.
    pub fn tree(&self, image: &str) -> Rc<Tree> {
        let image = self.store.resolve(image).unwrap();
        let id = image.id().to_string();
        if let Some(tree) = self.trees.borrow().get(&id) {
            return Rc::clone(tree);
        }
        let mut tree: BTreeMap<String, Entry> = BTreeMap::new();
        for layer in image.manifest.layers() {
            let blob = self.store.open_blob(layer.digest()).unwrap();
            let plain = rbuild_builder::snapshot::decompress(blob).unwrap();
            let mut archive = tar::Archive::new(plain);
            for entry in archive.entries().unwrap() {
                let mut entry = entry.unwrap();
                let raw = entry.path().unwrap().display().to_string();
                let path = format!("/{}", raw.trim_start_matches("./").trim_end_matches('/'));
                let (parent, name) = path.rsplit_once('/').unwrap();
                if name == ".wh..wh..opq" {
                    let prefix = format!("{parent}/");
                    tree.retain(|p, _| !p.starts_with(&prefix));
                    continue;
                }
                if let Some(gone) = name.strip_prefix(".wh.") {
                    let gone = format!("{parent}/{gone}");
                    tree.retain(|p, _| *p != gone && !p.starts_with(&format!("{gone}/")));
                    continue;
                }
                let h = entry.header().clone();
                let kind = match h.entry_type() {
                    tar::EntryType::Regular => 'f',
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => 'l',
                    tar::EntryType::Link => 'h',
                    _ => 'o',
                };
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                let link = h
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.display().to_string())
                    .unwrap_or_default();
                let e = Entry {
                    kind,
                    uid: h.uid().unwrap(),
                    gid: h.gid().unwrap(),
                    mode: h.mode().unwrap() & 0o7777,
                    data,
                    link,
                };
                tree.insert(path, e);
            }
        }
        let tree = Rc::new(tree);
        self.trees.borrow_mut().insert(id, Rc::clone(&tree));
        tree
    }

    /// The entry at `path` of `image` (following no link).
    pub fn entry(&self, image: &str, path: &str) -> Option<Entry> {
        self.tree(image).get(path.trim_end_matches('/')).cloned()
    }

    /// The content of the file at `path`, without its last newline.
    pub fn file(&self, image: &str, path: &str) -> String {
        let e = self.entry(image, path).unwrap_or_else(|| panic!("{path} is not in {image}"));
        String::from_utf8_lossy(&e.data).trim_end_matches('\n').to_string()
    }

    /// Whether `path` is in `image`.
    pub fn exists(&self, image: &str, path: &str) -> bool {
        self.entry(image, path).is_some()
    }

    /// The names in the directory `dir` of `image`, sorted.
    pub fn ls(&self, image: &str, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.tree(image)
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }

    /// `docker image inspect`'s view of the image.
    pub fn inspect(&self, image: &str) -> serde_json::Value {
        let image = self.store.resolve(image).unwrap();
        self.store.inspect_view(&image).unwrap()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// `(uid, gid, mode)` of an entry.
pub fn owner_mode(e: &Entry) -> (u64, u64, u32) {
    (e.uid, e.gid, e.mode)
}
