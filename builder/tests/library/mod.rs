//! The library's workflows end to end, as a program that embeds rbuild would run them:
//! build and push to a real registry (Debian's docker-registry on a free loopback port),
//! pull into a second store, export; every step's events checked.

use std::path::Path;
use std::process::Command;

use rbuild_builder::engine::{BuildOptions, Platform, RecordingExecutor};
use rbuild_builder::export::{self, Output};
use rbuild_builder::reference::Reference;
use rbuild_builder::remote;
use rbuild_builder::report::{Direction, Event, RecordingReporter};
use rbuild_builder::store::Store;
use rbuild_builder::workflow::{self, BuildJob};
use rbuild_registry_client::ClientOptions;

/// Debian's docker-registry, started by `testdata/registry.sh`, stopped when dropped.
struct Registry {
    host: String,
    pid: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let found = Command::new("sh").args(["-c", "command -v docker-registry"]).status();
        assert!(
            found.is_ok_and(|s| s.success()),
            "this test needs docker-registry (Debian package docker-registry); .ci/run installs it"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = super::repo().join("testdata/registry.sh");
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#". "$1"; serve_registry "$2" >/dev/null && echo "$REGISTRY $REGISTRY_PID""#)
            .arg("bash")
            .arg(&script)
            .arg(dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (host, pid) = text.trim().split_once(' ').expect("docker-registry did not start");
        Registry { host: host.to_string(), pid: pid.to_string(), _dir: dir }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

fn options(context: &Path, tags: Vec<Reference>) -> BuildOptions {
    let options = BuildOptions::from_context(context).unwrap();
    BuildOptions { tags, source_date_epoch: Some(1_700_000_000), ..options }
}

#[test]
fn build_push_pull_and_export_through_the_library() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("hello.txt"), "hello from the library\n").unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\nLABEL made.by=library\n",
    )
    .unwrap();
    let tag: Reference = format!("{}/lib/hello:v1", registry.host).parse().unwrap();

    // Build and push.
    let first = Store::open(work.path().join("first")).unwrap();
    let df = rbuild_builder::parse(&std::fs::read_to_string(context.join("Dockerfile")).unwrap())
        .unwrap();
    let job = BuildJob { push: true, registry: ClientOptions::default(), ..Default::default() };
    let reporter = RecordingReporter::default();
    let built = workflow::build(
        &first,
        &df,
        &options(&context, vec![tag.clone()]),
        &job,
        &RecordingExecutor::default(),
        &reporter,
        &mut std::io::sink(),
    )
    .unwrap();
    let events = reporter.events();
    let steps: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Step { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(steps, ["FROM scratch", "COPY hello.txt /hello.txt", "LABEL made.by=library"]);
    assert!(events.contains(&Event::PushStarted { repository: tag.repository() }), "{events:?}");
    let pushed_blobs = events
        .iter()
        .filter(|e| matches!(e, Event::BlobDone { direction: Direction::Push, .. }))
        .count();
    assert_eq!(pushed_blobs, 2, "a layer and a config: {events:?}");
    let pushed = events.iter().find_map(|e| match e {
        Event::Pushed { tag, digest, .. } => Some((tag.clone(), digest.clone())),
        _ => None,
    });
    let (pushed_tag, pushed_digest) = pushed.expect("a Pushed event");
    assert_eq!(pushed_tag, "v1");
    assert_eq!(pushed_digest, *built.manifest.digest());

    // Pull into a second store.
    let second = Store::open(work.path().join("second")).unwrap();
    let client = remote::client(ClientOptions::default()).unwrap();
    let reporter = RecordingReporter::default();
    let pulled = remote::pull_image(&second, &client, &tag, &Platform::host(), &reporter).unwrap();
    assert_eq!(pulled.image_id, built.image_id);
    assert_eq!(pulled.digest, pushed_digest);
    let events = reporter.events();
    assert!(matches!(&events[0], Event::PullStarted { tag, .. } if tag == "v1"), "{events:?}");
    let pulled_blobs = events
        .iter()
        .filter(|e| matches!(e, Event::BlobDone { direction: Direction::Pull, .. }))
        .count();
    // The layer only: the config blob is fetched unshown, as docker shows a pull.
    assert_eq!(pulled_blobs, 1, "{events:?}");
    // A second pull finds every blob in the store and downloads nothing.
    let reporter = RecordingReporter::default();
    remote::pull_image(&second, &client, &tag, &Platform::host(), &reporter).unwrap();
    assert!(!reporter.events().iter().any(|e| matches!(e, Event::BlobStarted { .. })));

    // Export the pulled image: its file system, and an OCI archive.
    let image = second.resolve(&tag.to_string()).unwrap();
    let rootfs = work.path().join("rootfs");
    export::export(&second, &image, &[], &Output::Local(rootfs.clone()), &mut std::io::sink())
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(),
        "hello from the library\n"
    );
    let archive = work.path().join("hello.tar");
    let output = Output::parse(&format!("type=oci,dest={}", archive.display())).unwrap();
    export::export(&second, &image, std::slice::from_ref(&tag), &output, &mut std::io::sink())
        .unwrap();
    let third = Store::open(work.path().join("third")).unwrap();
    let loaded =
        rbuild_builder::archive::load(&third, std::fs::File::open(&archive).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, built.image_id);
}

/// Serves `body` for every request on a free loopback port, `count` times; the URL.
fn serve_once(body: Vec<u8>, count: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(count) {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[test]
fn a_context_from_a_url() {
    use rbuild_builder::engine::context;
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let source = remote::RegistrySource::default();
    // A compressed tar archive: its content is the context.
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, text: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, text.as_bytes()).unwrap();
    };
    add("Dockerfile", "FROM scratch\nCOPY hello.txt /\n");
    add("hello.txt", "from a URL\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar.into_inner().unwrap()).unwrap();
    let url = format!("{}/context.tar.gz", serve_once(gz.finish().unwrap(), 1));
    assert!(context::is_remote(&url));
    let fetched = context::fetch_remote(&store, &url, &source).unwrap();
    let options = BuildOptions::from_context(&fetched.path).unwrap();
    let df = rbuild_builder::parse(&options.dockerfile_text).unwrap();
    let exec = RecordingExecutor::default();
    let built = rbuild_builder::engine::build(
        &store,
        &df,
        &options,
        &source,
        &exec,
        &RecordingReporter::default(),
    )
    .unwrap();
    let rootfs = work.path().join("rootfs");
    let image = store.resolve(built.image_id.as_ref()).unwrap();
    export::export(&store, &image, &[], &Output::Local(rootfs.clone()), &mut std::io::sink())
        .unwrap();
    assert_eq!(std::fs::read_to_string(rootfs.join("hello.txt")).unwrap(), "from a URL\n");
    // Any other file is the Dockerfile of an empty context.
    let url = format!("{}/Dockerfile", serve_once(b"FROM scratch\nLABEL a=b\n".to_vec(), 1));
    let fetched = context::fetch_remote(&store, &url, &source).unwrap();
    let names: Vec<String> = std::fs::read_dir(&fetched.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["Dockerfile"]);
}

/// A context tar from a URL is hostile input: an entry that climbs out with `..` is
/// refused, and nothing is written outside the context's folder.
#[test]
fn a_remote_context_cannot_write_outside_its_folder() {
    use rbuild_builder::engine::context;
    let work = tempfile::tempdir().unwrap();
    let store = Store::open(work.path().join("store")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    // tar::Builder refuses `..` in names: write the name into the header directly.
    h.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../escaped.t");
    h.set_cksum();
    tar.append(&h, &b"evil"[..]).unwrap();
    let url = format!("{}/context.tar", serve_once(tar.into_inner().unwrap(), 1));
    let err = context::fetch_remote(&store, &url, &remote::RegistrySource::default())
        .expect_err("an escaping entry must be refused");
    assert!(rbuild_builder::chain(&err).contains("climbs out"), "{}", rbuild_builder::chain(&err));
    let tmp = store.tmp_dir();
    let escaped: Vec<_> =
        walk(work.path()).into_iter().filter(|p| p.ends_with("escaped.t")).collect();
    assert!(escaped.is_empty(), "written outside: {escaped:?} (store tmp {})", tmp.display());
}

/// Every path under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}
