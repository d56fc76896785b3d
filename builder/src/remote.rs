//! The bridge between the store and registries: pull an image into the store, push one
//! from it, and the engine's [`ImageSource`] over the network.
//!
//! The registry client knows no store and the store knows no network; this module is the
//! only place where both meet. Every workflow reports through one [`Reporter`]: transfers
//! run on a tokio runtime of their own (each blob in its own task, so hashing and writing
//! use every core) and send their events back over a channel to the caller's thread,
//! which hands them to the reporter in order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use futures_util::{stream, StreamExt, TryStreamExt};
use oci_spec::image::{
    Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest, MediaType,
};
use rbuild_registry_client::{Client, ClientOptions, DockerConfig, Progress, Repository};

use crate::engine::{ImageSource, Platform};
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::report::{Direction, Event, Reporter};
use crate::store::{Image, Store};

/// A registry client with the credentials of the docker config file
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`).
pub fn client(options: ClientOptions) -> Result<Client> {
    let path = DockerConfig::default_path();
    let config = DockerConfig::load(&path).map_err(Error::io("reading", path.clone()))?;
    Client::new(options, Arc::new(config)).map_err(|e| Error::registry("making a client", e))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::io("starting the async runtime for", "registry transfers"))
}

/// Forwards the client's transfer progress as events, over a channel.
struct Forward {
    events: std::sync::Mutex<std::sync::mpsc::Sender<Event>>,
    direction: Direction,
}

impl Forward {
    fn send(&self, event: Event) {
        if let Ok(tx) = self.events.lock() {
            let _ = tx.send(event);
        }
    }
}

impl Progress for Forward {
    fn start(&self, digest: &Digest, size: u64) {
        self.send(Event::BlobStarted { direction: self.direction, digest: digest.clone(), size });
    }
    fn advance(&self, digest: &Digest, bytes: u64) {
        self.send(Event::BlobProgress { digest: digest.clone(), bytes });
    }
    fn skipped(&self, digest: &Digest, why: &str) {
        self.send(Event::BlobSkipped { digest: digest.clone(), why: why.to_string() });
    }
    fn done(&self, digest: &Digest) {
        self.send(Event::BlobDone { direction: self.direction, digest: digest.clone() });
    }
}

/// Runs `work` on a thread of its own with a progress that forwards to `reporter`, which
/// receives the events on this thread as they come. The channel closes when `work` has
/// returned and dropped its runtime (and with it every task holding the progress).
fn reporting<T: Send>(
    reporter: &dyn Reporter,
    direction: Direction,
    work: impl FnOnce(Arc<dyn Progress>) -> Result<T> + Send,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let progress: Arc<dyn Progress> =
        Arc::new(Forward { events: std::sync::Mutex::new(tx), direction });
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || work(progress));
        for event in rx {
            reporter.event(event);
        }
        worker.join().unwrap_or_else(|_| Err(Error::Panicked("a transfer thread")))
    })
}

/// What a pull brought into the store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image ID (its config's digest).
    pub image_id: Digest,
    /// The digest the registry named: the index's for a multi-platform image, else the
    /// manifest's.
    pub digest: Digest,
}

fn repository(reference: &Reference) -> (Repository, String) {
    let repo = Repository::new(reference.domain(), reference.path());
    let tag_or_digest = reference.digest().or(reference.tag()).unwrap_or("latest").to_string();
    (repo, tag_or_digest)
}

/// The tags of `reference`'s repository in its registry.
pub fn list_tags(client: &Client, reference: &Reference) -> Result<Vec<String>> {
    let (repo, _) = repository(reference);
    runtime()?.block_on(client.list_tags(&repo)).map_err(|e| {
        Error::registry(format!("listing the tags of {}", reference.familiar_repository()), e)
    })
}

/// Pulls `reference` (for `platform` when it names a multi-platform index) into the
/// store and names it `reference` (unless pulled by digest). Blobs the store has are not
/// downloaded again; every byte is verified against its digest as it streams in.
pub fn pull_image(
    store: &Store,
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    reporter: &dyn Reporter,
) -> Result<Pulled> {
    let (repo, tag_or_digest) = repository(reference);
    let failed = |e| Error::registry(format!("pulling {}", reference.familiar()), e);
    reporter.event(Event::PullStarted {
        tag: reference.tag().unwrap_or(&tag_or_digest).to_string(),
        repository: reference.familiar_repository(),
    });
    let _in_use = store.in_use()?;
    let rt = runtime()?;
    let (manifest, index) = rt
        .block_on(async {
            let first = client.pull_manifest(&repo, &tag_or_digest).await?;
            if !first.is_index() {
                return Ok((first, None));
            }
            let index: ImageIndex = serde_json::from_slice(&first.bytes).map_err(|e| {
                rbuild_registry_client::Error::Protocol(format!("reading the image index: {e}"))
            })?;
            let chosen = index
                .manifests()
                .iter()
                .find(|m| m.platform().as_ref().is_some_and(|p| platform.matches(p)))
                .ok_or_else(|| rbuild_registry_client::Error::NoPlatform(platform.to_string()))?;
            let m = client.pull_manifest(&repo, chosen.digest().as_ref()).await?;
            Ok((m, Some(first)))
        })
        .map_err(failed)?;
    drop(rt);
    let parsed: ImageManifest =
        serde_json::from_slice(&manifest.bytes).map_err(Error::json("the image manifest"))?;
    let blobs: Vec<Descriptor> =
        std::iter::once(parsed.config().clone()).chain(parsed.layers().iter().cloned()).collect();
    let missing: Vec<Descriptor> =
        blobs.iter().filter(|d| !store.has_blob(d.digest())).cloned().collect();
    // The config is fetched unshown: docker lists only layers in a pull's progress.
    let (config_blob, layers): (Vec<Descriptor>, Vec<Descriptor>) =
        missing.into_iter().partition(|d| d.digest() == parsed.config().digest());
    let what = reference.familiar();
    let none = BTreeMap::new();
    download_blobs(client, &repo, store, config_blob, &crate::report::NoReport, &what, &none)?;
    // Layers are checked against their diff IDs whenever they are extracted (snapshots and
    // unpack hash the uncompressed stream); here only their number must agree.
    let config: ImageConfiguration = store.read_json(parsed.config().digest(), "image config")?;
    crate::store::check_layer_count(config.rootfs().diff_ids().len(), parsed.layers().len())?;
    // Each layer becomes its snapshot as it arrives (several at once), as docker's pull
    // leaves its layers ready to run.
    let mut diff_ids = BTreeMap::new();
    for (layer, diff_id) in parsed.layers().iter().zip(config.rootfs().diff_ids()) {
        let diff_id: Digest =
            diff_id.parse().map_err(|_| Error::BadArchive(format!("invalid diff ID {diff_id}")))?;
        diff_ids.insert(layer.digest().to_string(), diff_id);
    }
    download_blobs(client, &repo, store, layers, reporter, &what, &diff_ids)?;
    for doc in std::iter::once(&manifest).chain(index.as_ref()) {
        let stored = store.put_bytes(&doc.bytes)?;
        if stored != doc.digest {
            return Err(Error::DigestMismatch { expected: doc.digest.clone(), actual: stored });
        }
    }
    let pulled: Vec<String> = blobs.iter().map(|d| d.digest().to_string()).collect();
    store.record_blob_sources(&repo.registry, &repo.name, &pulled)?;
    let media = MediaType::from(manifest.media_type.as_str());
    let desc = Descriptor::new(media, manifest.bytes.len() as u64, manifest.digest.clone());
    let names: Vec<Reference> =
        if reference.digest().is_some() { Vec::new() } else { vec![reference.clone()] };
    store.add_image(&desc, &names)?;
    let digest = index.as_ref().map_or(&manifest.digest, |i| &i.digest).clone();
    Ok(Pulled { image_id: parsed.config().digest().clone(), digest })
}

/// Downloads `blobs` into the store, each in its own task, at most the client's
/// concurrency at once; a layer with an entry in `unpack` (its diff ID) is extracted
/// into its snapshot on the way.
fn download_blobs(
    client: &Client,
    repo: &Repository,
    store: &Store,
    blobs: Vec<Descriptor>,
    reporter: &dyn Reporter,
    what: &str,
    unpack: &BTreeMap<String, Digest>,
) -> Result<()> {
    reporting(reporter, Direction::Pull, |progress| {
        let rt = runtime()?;
        rt.block_on(async {
            stream::iter(blobs)
                .map(|d| {
                    let (client, repo, store, progress) =
                        (client.clone(), repo.clone(), store.clone(), Arc::clone(&progress));
                    let what = what.to_string();
                    let diff_id = unpack.get(&d.digest().to_string()).cloned();
                    tokio::spawn(async move {
                        // The client hashes every byte it hands over; the store need not again.
                        let writer = store.verified_blob_writer()?;
                        let snapshot = match &diff_id {
                            Some(id) => store.snapshot_from_stream(id)?,
                            None => None,
                        };
                        let mut sink = Tee { blob: writer, snapshot, stopped: false };
                        client
                            .pull_blob(&repo, d.digest(), d.size(), &mut sink, progress.as_ref())
                            .await
                            .map_err(|e| Error::registry(format!("pulling {what}"), e))?;
                        let size = sink.blob.commit_verified(d.digest())?;
                        if let Some(s) = sink.snapshot {
                            s.finish()?;
                        }
                        Ok(size)
                    })
                })
                .buffer_unordered(client.options().concurrency.max(1))
                .map(|joined| joined.unwrap_or_else(|_| Err(Error::Panicked("a download task"))))
                .try_collect::<Vec<_>>()
                .await
        })?;
        Ok(())
    })
}

/// A blob's bytes as they arrive: into the store's blob, and into the snapshot being made
/// of it (which stops taking them if its extraction fails: its error comes when it is
/// finished).
struct Tee {
    blob: crate::store::BlobWriter,
    snapshot: Option<crate::store::StreamedSnapshot>,
    /// The extraction stopped taking bytes.
    stopped: bool,
}

impl std::io::Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.blob.write_all(data)?;
        if let Some(s) = self.snapshot.as_mut().filter(|_| !self.stopped) {
            // When the extraction stopped, the blob goes on; the extraction's error is
            // reported when the snapshot is finished.
            self.stopped = s.input.write_all(data).is_err();
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.blob.flush()
    }
}

/// Downloads the manifest `reference` names and every blob it refers to into the store,
/// without naming anything (a shared build cache). Returns the manifest.
pub fn pull_blobs(
    store: &Store,
    client: &Client,
    reference: &Reference,
    reporter: &dyn Reporter,
) -> Result<ImageManifest> {
    let (repo, tag_or_digest) = repository(reference);
    let _in_use = store.in_use()?;
    let pulled = runtime()?
        .block_on(client.pull_manifest(&repo, &tag_or_digest))
        .map_err(|e| Error::registry(format!("pulling {}", reference.familiar()), e))?;
    let manifest: ImageManifest =
        serde_json::from_slice(&pulled.bytes).map_err(Error::json("the cache manifest"))?;
    let missing: Vec<Descriptor> = std::iter::once(manifest.config().clone())
        .chain(manifest.layers().iter().cloned())
        .filter(|d| !store.has_blob(d.digest()))
        .collect();
    let none = BTreeMap::new();
    download_blobs(client, &repo, store, missing, reporter, &reference.familiar(), &none)?;
    Ok(manifest)
}

/// Pushes `image` from the store to `dest` (which needs a tag). Blobs another repository
/// of the same registry is known to hold are mounted from it rather than uploaded; an
/// upload that breaks resumes where the registry says it stopped. Returns the pushed
/// manifest's digest.
pub fn push_image(
    store: &Store,
    client: &Client,
    image: &Image,
    dest: &Reference,
    reporter: &dyn Reporter,
) -> Result<Digest> {
    let blobs: Vec<Descriptor> = image
        .manifest
        .layers()
        .iter()
        .cloned()
        .chain(std::iter::once(image.manifest.config().clone()))
        .collect();
    push_manifest(store, client, &image.entry.manifest, &blobs, dest, reporter)
}

/// Pushes `blobs` (a manifest's config and layers) from the store, then the store's
/// manifest `manifest_desc`, to `dest` (which needs a tag). Returns the manifest's digest.
pub fn push_manifest(
    store: &Store,
    client: &Client,
    manifest_desc: &Descriptor,
    blobs: &[Descriptor],
    dest: &Reference,
    reporter: &dyn Reporter,
) -> Result<Digest> {
    let Some(tag) = dest.tag().map(str::to_string) else {
        return Err(Error::InvalidOption(format!("the destination needs a tag: {dest}")));
    };
    let failed = |e| Error::registry(format!("pushing to {}", dest.familiar()), e);
    let repo = Repository::new(dest.domain(), dest.path());
    reporter.event(Event::PushStarted { repository: dest.repository() });
    reporting(reporter, Direction::Push, |progress| {
        runtime()?.block_on(async {
            // The largest first, so that a large layer listed last does not upload
            // alone at the end while the others are done.
            let mut largest_first = blobs.to_vec();
            largest_first.sort_by_key(|d| std::cmp::Reverse(d.size()));
            stream::iter(largest_first)
                .map(|d| {
                    let (client, repo, progress) =
                        (client.clone(), repo.clone(), Arc::clone(&progress));
                    let path = store.blob_path(d.digest());
                    let sources = store.blob_sources(&repo.registry, d.digest().as_ref());
                    tokio::spawn(async move {
                        client
                            .push_blob_from(
                                &repo,
                                d.digest(),
                                d.size(),
                                &path,
                                &sources,
                                progress.as_ref(),
                            )
                            .await
                    })
                })
                .buffer_unordered(client.options().concurrency.max(1))
                .map(|joined| {
                    joined.unwrap_or_else(|_| {
                        Err(rbuild_registry_client::Error::Protocol(
                            "an upload task panicked".into(),
                        ))
                    })
                })
                .try_collect::<Vec<_>>()
                .await
                .map_err(failed)
        })?;
        Ok(())
    })?;
    let pushed: Vec<String> = blobs.iter().map(|d| d.digest().to_string()).collect();
    store.record_blob_sources(&repo.registry, &repo.name, &pushed)?;
    let manifest = store.read_blob(manifest_desc.digest())?;
    let media = manifest_desc.media_type().to_string();
    let digest = runtime()?
        .block_on(client.push_manifest(&repo, &tag, &manifest, &media))
        .map_err(failed)?;
    reporter.event(Event::Pushed { tag, digest: digest.clone(), size: manifest.len() as u64 });
    Ok(digest)
}

/// The engine's way to the network: base images through the registry client (made when
/// first needed, with the docker config's credentials), ADD's URLs through plain HTTP.
#[derive(Debug, Clone, Default)]
pub struct RegistrySource {
    options: ClientOptions,
}

impl RegistrySource {
    /// A source whose registry clients have these options.
    pub fn new(options: ClientOptions) -> Self {
        RegistrySource { options }
    }
}

impl ImageSource for RegistrySource {
    fn pull(
        &self,
        store: &Store,
        reference: &Reference,
        platform: &Platform,
        reporter: &dyn Reporter,
    ) -> Result<Image> {
        let client = client(self.options.clone())?;
        let pulled = pull_image(store, &client, reference, platform, reporter)?;
        store.resolve(pulled.image_id.as_ref())
    }

    fn download(&self, url: &str, dest: &Path) -> Result<Option<i64>> {
        let failed = |e: reqwest::Error| Error::Download(e.to_string());
        runtime()?.block_on(async {
            let response = reqwest::Client::new()
                .get(url)
                .timeout(std::time::Duration::from_secs(600))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(failed)?;
            let modified = response
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs() as i64);
            let mut file = std::fs::File::create(dest).map_err(Error::io("creating", dest))?;
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(failed)?;
                std::io::Write::write_all(&mut file, &chunk).map_err(Error::io("writing", dest))?;
            }
            Ok(modified)
        })
    }
}
