//! The distribution API verbs: manifests and blobs, pulled and pushed.

use std::io::Write;
use std::path::Path;

use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};

use oci_spec::image::{Digest, Sha256Digest};

use crate::client::{Client, Deadline, Repository};
use crate::error::{Error, Result};

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;

/// The manifest media types rbuild accepts, most preferred first.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The bytes, exactly as served (their digest is the manifest's digest).
    pub bytes: Vec<u8>,
    /// The media type (from the document, else the Content-Type header).
    pub media_type: String,
    /// `sha256:...` of the bytes.
    pub digest: Digest,
}

impl Manifest {
    /// Whether this is an index (OCI image index or Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.media_type.contains("index") || self.media_type.contains("manifest.list")
    }
}

/// Reports the progress of blob transfers; the CLI draws it.
pub trait Progress: Send + Sync {
    /// A transfer starts.
    fn start(&self, digest: &Digest, size: u64);
    /// `bytes` more went through.
    fn advance(&self, digest: &Digest, bytes: u64);
    /// The blob was already there (skipped, or mounted from another repository).
    fn skipped(&self, digest: &Digest, why: &str);
    /// The transfer finished.
    fn done(&self, digest: &Digest);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &Digest, _: u64) {}
    fn advance(&self, _: &Digest, _: u64) {}
    fn skipped(&self, _: &Digest, _: &str) {}
    fn done(&self, _: &Digest) {}
}

/// The typed `sha256:` digest of `bytes`.
fn sha256_digest(bytes: &[u8]) -> Digest {
    // 64 lower-case hex characters are always a valid sha256 digest.
    match hex::encode(Sha256::digest(bytes)).parse::<Sha256Digest>() {
        Ok(d) => d.into(),
        Err(_) => unreachable!("a sha256 hex string is a valid digest"),
    }
}

impl Client {
    /// Pulls a manifest or index by tag or digest, checking its digest when pulled by one.
    pub async fn pull_manifest(&self, repo: &Repository, reference: &str) -> Result<Manifest> {
        let url = format!("{}/manifests/{reference}", self.repo_url(repo).await?);
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_str(&MANIFEST_TYPES.join(", "))
                .map_err(|e| Error::Protocol(e.to_string()))?,
        );
        let response = self.send(repo, Method::GET, &url, headers, None, "pull").await?;
        if !response.status().is_success() {
            return Err(Self::fail(&url, response).await);
        }
        if response.content_length().is_some_and(|n| n > MAX_MANIFEST) {
            return Err(Error::TooLarge(url, MAX_MANIFEST));
        }
        let header_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.request_error(&url, e, Deadline::Request))?;
            if bytes.len() as u64 + chunk.len() as u64 > MAX_MANIFEST {
                return Err(Error::TooLarge(url, MAX_MANIFEST));
            }
            bytes.extend_from_slice(&chunk);
        }
        let digest = sha256_digest(&bytes);
        if reference.contains(':') && reference != digest.as_ref() {
            return Err(Error::DigestMismatch {
                what: format!("manifest {reference}"),
                expected: reference.to_string(),
                actual: digest.to_string(),
            });
        }
        let doc_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(String::from));
        let media_type = doc_type.unwrap_or(header_type);
        Ok(Manifest { bytes, media_type, digest })
    }

    /// The repository's tags (`GET /v2/NAME/tags/list`), following the `Link` header page
    /// by page (at most 1000 pages, each at most [`MAX_MANIFEST`] bytes).
    pub async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        let base = self.repo_url(repo).await?;
        let mut url = format!("{base}/tags/list");
        let mut tags = Vec::new();
        for _ in 0..1000 {
            let response =
                self.send(repo, Method::GET, &url, HeaderMap::new(), None, "pull").await?;
            if !response.status().is_success() {
                return Err(Self::fail(&url, response).await);
            }
            let link = response.headers().get("link").and_then(|v| v.to_str().ok());
            let next = next_page(&base, link)?;
            if response.content_length().is_some_and(|n| n > MAX_MANIFEST) {
                return Err(Error::TooLarge(url, MAX_MANIFEST));
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|e| self.request_error(&url, e, Deadline::Request))?;
            if bytes.len() as u64 > MAX_MANIFEST {
                return Err(Error::TooLarge(url, MAX_MANIFEST));
            }
            let page: TagList = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Protocol(format!("reading the tag list of {url}: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
        Err(Error::Protocol(format!("the tag list of {base} has more than 1000 pages")))
    }

    /// Pushes a manifest or index under `reference` (a tag or its digest); returns its
    /// digest.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let url = format!("{}/manifests/{reference}", self.repo_url(repo).await?);
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|e| Error::Protocol(e.to_string()))?,
        );
        let body = bytes.to_vec();
        let make = move || Ok(reqwest::Body::from(body.clone()));
        let response =
            self.send(repo, Method::PUT, &url, headers, Some(&make), "pull,push").await?;
        if !response.status().is_success() {
            return Err(Self::fail(&url, response).await);
        }
        Ok(sha256_digest(bytes))
    }

    /// The size of a blob when the repository has it.
    pub async fn blob_size(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        let url = format!("{}/blobs/{digest}", self.repo_url(repo).await?);
        let response = self.send(repo, Method::HEAD, &url, HeaderMap::new(), None, "pull").await?;
        match response.status() {
            s if s.is_success() => Ok(Some(response.content_length().unwrap_or(0))),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::fail(&url, response).await),
        }
    }

    /// Downloads a blob into `sink`, checking its size and digest. A connection that
    /// breaks is resumed with a `Range` request from the bytes already received.
    pub async fn pull_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        sink: &mut (dyn Write + Send),
        progress: &dyn Progress,
    ) -> Result<()> {
        let url = format!("{}/blobs/{digest}", self.repo_url(repo).await?);
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut resumes = 0;
        progress.start(digest, size);
        loop {
            let mut headers = HeaderMap::new();
            if received > 0 {
                headers.insert(
                    RANGE,
                    HeaderValue::from_str(&format!("bytes={received}-"))
                        .map_err(|e| Error::Protocol(e.to_string()))?,
                );
            }
            let response =
                self.for_transfer().send(repo, Method::GET, &url, headers, None, "pull").await?;
            let status = response.status();
            if !status.is_success() {
                return Err(Self::fail(&url, response).await);
            }
            // A server that ignores Range sends everything again: skip what we have.
            let mut skip =
                if received > 0 && status != StatusCode::PARTIAL_CONTENT { received } else { 0 };
            let mut stream = response.bytes_stream();
            let mut broke = None;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        broke = Some(e);
                        break;
                    }
                };
                let mut data = &chunk[..];
                if skip > 0 {
                    let n = (skip as usize).min(data.len());
                    data = &data[n..];
                    skip -= n as u64;
                }
                if received + data.len() as u64 > size {
                    return Err(Error::Protocol(format!(
                        "{url}: the blob is longer than the {size} bytes announced"
                    )));
                }
                hasher.update(data);
                sink.write_all(data)
                    .map_err(|e| Error::Io { what: digest.to_string(), source: e })?;
                received += data.len() as u64;
                progress.advance(digest, data.len() as u64);
            }
            match broke {
                None if received == size => break,
                None => {
                    if resumes >= self.options().retries {
                        return Err(Error::Protocol(format!(
                            "{url}: the blob ended after {received} of {size} bytes"
                        )));
                    }
                }
                Some(e) => {
                    if resumes >= self.options().retries || e.is_timeout() {
                        return Err(self.request_error(&url, e, Deadline::Transfer));
                    }
                    tracing::debug!("{url}: broke after {received} bytes ({e}); resuming");
                }
            }
            resumes += 1;
            tokio::time::sleep(self.options().backoff).await;
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != digest.as_ref() {
            return Err(Error::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.to_string(),
                actual,
            });
        }
        sink.flush().map_err(|e| Error::Io { what: digest.to_string(), source: e })?;
        progress.done(digest);
        Ok(())
    }

    /// Asks the registry to mount a blob from another repository of the same registry;
    /// whether it did.
    pub async fn mount_blob(&self, repo: &Repository, digest: &Digest, from: &str) -> Result<bool> {
        let url =
            format!("{}/blobs/uploads/?mount={digest}&from={from}", self.repo_url(repo).await?);
        let response =
            self.send(repo, Method::POST, &url, HeaderMap::new(), None, "pull,push").await?;
        Ok(response.status() == StatusCode::CREATED)
    }

    /// Uploads the blob in the file at `path` unless the repository has it already (then
    /// returns false). Small blobs go in one PUT; larger ones in chunks (PATCH), and when a
    /// chunk fails the upload resumes from the offset the registry reports, so what it
    /// has is not sent again.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<bool> {
        self.push_blob_from(repo, digest, size, path, &[], progress).await
    }

    /// Like [`Client::push_blob`], but first asks the registry to mount the blob from one
    /// of `mount_from` (other repositories of the same registry known to hold it).
    pub async fn push_blob_from(
        &self,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        path: &Path,
        mount_from: &[String],
        progress: &dyn Progress,
    ) -> Result<bool> {
        if self.blob_size(repo, digest).await?.is_some() {
            progress.skipped(digest, "already exists");
            return Ok(false);
        }
        for from in mount_from.iter().filter(|f| **f != repo.name) {
            if self.mount_blob(repo, digest, from).await.unwrap_or(false) {
                progress.skipped(digest, &format!("mounted from {from}"));
                return Ok(false);
            }
        }
        progress.start(digest, size);
        let mut location = self.start_upload(repo).await?;
        if size <= self.options().chunk_size {
            self.put_range(repo, &location, path, 0, size, digest, progress).await?;
        } else {
            let mut offset = 0;
            let mut failures = 0;
            while offset < size {
                let end = (offset + self.options().chunk_size).min(size);
                match self.patch_range(repo, &location, path, offset, end).await {
                    Ok(next) => {
                        progress.advance(digest, end - offset);
                        location = next;
                        offset = end;
                    }
                    Err(e) => {
                        failures += 1;
                        if failures > self.options().retries {
                            return Err(e);
                        }
                        tracing::debug!(
                            "chunk {offset}-{end} of {digest} failed ({e}); asking where to resume"
                        );
                        tokio::time::sleep(self.options().backoff).await;
                        match self.upload_status(repo, &location).await {
                            Ok((next, resume_at)) => {
                                location = next;
                                offset = resume_at;
                            }
                            Err(status_error) => {
                                // The registry kept part of the failed chunk and cannot go
                                // on from there (distribution cannot): start this blob over.
                                tracing::debug!("{digest}: the upload cannot resume ({status_error}); starting over");
                                location = self.start_upload(repo).await?;
                                offset = 0;
                            }
                        }
                    }
                }
            }
            self.put_range(repo, &location, path, size, size, digest, progress).await?;
        }
        progress.done(digest);
        Ok(true)
    }

    async fn absolute(&self, repo: &Repository, location: &str) -> Result<String> {
        Ok(if location.starts_with('/') {
            format!("{}://{}{location}", self.scheme(&repo.registry).await?, repo.registry)
        } else {
            location.to_string()
        })
    }

    async fn location_of(
        &self,
        repo: &Repository,
        url: &str,
        response: &reqwest::Response,
    ) -> Result<String> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol(format!("{url}: no Location for the upload")))?;
        self.absolute(repo, location).await
    }

    /// Starts an upload session; returns its URL.
    async fn start_upload(&self, repo: &Repository) -> Result<String> {
        let url = format!("{}/blobs/uploads/", self.repo_url(repo).await?);
        let response =
            self.send(repo, Method::POST, &url, HeaderMap::new(), None, "pull,push").await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::fail(&url, response).await);
        }
        self.location_of(repo, &url, &response).await
    }

    /// Where an interrupted upload stands: its URL and the next byte the registry wants.
    async fn upload_status(&self, repo: &Repository, location: &str) -> Result<(String, u64)> {
        // The session's own URL, without the state the last chunk left in its query: that
        // state names the offset before the failed chunk, which a registry that kept part
        // of the chunk no longer accepts.
        let location = location.split('?').next().unwrap_or(location);
        let response =
            self.send(repo, Method::GET, location, HeaderMap::new(), None, "pull,push").await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(Self::fail(location, response).await);
        }
        let next = response
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit_once('-'))
            .and_then(|(_, end)| end.parse::<u64>().ok())
            .map_or(0, |end| end + 1);
        Ok((self.location_of(repo, location, &response).await?, next))
    }

    fn file_range(path: &Path, start: u64, end: u64) -> Result<reqwest::Body> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::File::open(path)
            .map_err(|e| Error::Io { what: path.display().to_string(), source: e })?;
        file.seek(SeekFrom::Start(start))
            .map_err(|e| Error::Io { what: path.display().to_string(), source: e })?;
        let file = tokio::fs::File::from_std(file);
        Ok(reqwest::Body::wrap_stream(tokio_util_like::take(file, end - start)))
    }

    /// Sends bytes `start..end` of the file as one PATCH; returns the next upload URL.
    async fn patch_range(
        &self,
        repo: &Repository,
        location: &str,
        path: &Path,
        start: u64,
        end: u64,
    ) -> Result<String> {
        let mut headers = octet_headers(end - start);
        headers.insert(
            "Content-Range",
            HeaderValue::from_str(&format!("{start}-{}", end - 1))
                .map_err(|e| Error::Protocol(e.to_string()))?,
        );
        let path = path.to_path_buf();
        let make = move || Self::file_range(&path, start, end);
        // One attempt: on failure the caller asks the registry where to resume.
        let response = self.send_once(repo, Method::PATCH, location, headers, &make).await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(Self::fail(location, response).await);
        }
        self.location_of(repo, location, &response).await
    }

    /// Closes an upload with a PUT carrying bytes `start..end` of the file (none when
    /// `start == end`) and the digest.
    #[allow(clippy::too_many_arguments)]
    async fn put_range(
        &self,
        repo: &Repository,
        location: &str,
        path: &Path,
        start: u64,
        end: u64,
        digest: &Digest,
        progress: &dyn Progress,
    ) -> Result<()> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let headers = octet_headers(end - start);
        let path = path.to_path_buf();
        let make = move || Self::file_range(&path, start, end);
        let response =
            self.send(repo, Method::PUT, &put_url, headers, Some(&make), "pull,push").await?;
        if response.status() != StatusCode::CREATED {
            return Err(Self::fail(&put_url, response).await);
        }
        progress.advance(digest, end - start);
        Ok(())
    }
}

/// Headers for a body of `len` raw bytes.
fn octet_headers(len: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    headers
}

/// A byte stream over the first `n` bytes of an async reader (what `tokio-util`'s
/// `ReaderStream` over `take` would give; written here to keep to tokio itself).
mod tokio_util_like {
    use bytes::Bytes;
    use futures_util::stream::{self, Stream};
    use tokio::io::{AsyncRead, AsyncReadExt};

    pub(super) fn take<R: AsyncRead + Unpin + Send + 'static>(
        reader: R,
        n: u64,
    ) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        stream::unfold((reader.take(n), vec![0u8; 256 << 10]), |(mut r, mut buf)| async move {
            match r.read(&mut buf).await {
                Ok(0) => None,
                Ok(k) => Some((Ok(Bytes::copy_from_slice(&buf[..k])), (r, buf))),
                Err(e) => Some((Err(e), (r, buf))),
            }
        })
    }
}

/// A page of `GET /v2/NAME/tags/list`.
#[derive(serde::Deserialize)]
struct TagList {
    tags: Option<Vec<String>>,
}

/// The URL of the next page of a tag list whose repository API is at `base`, from its
/// `Link` header: the page stays on this registry (a path, or a URL of the same origin);
/// a link elsewhere is refused.
fn next_page(base: &str, link: Option<&str>) -> Result<Option<String>> {
    let origin = base.split("/v2/").next().unwrap_or("");
    match link.and_then(next_link) {
        Some(p) if p.starts_with("/v2/") => Ok(Some(format!("{origin}{p}"))),
        Some(p) if p.starts_with(&format!("{origin}/v2/")) => Ok(Some(p)),
        Some(p) => Err(Error::Protocol(format!("a tag list page elsewhere: {p}"))),
        None => Ok(None),
    }
}

/// The target of `Link: <URL>; rel="next"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params
            .contains("rel=\"next\"")
            .then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

#[cfg(test)]
mod link_tests {
    #[test]
    fn next_link_is_read() {
        assert_eq!(
            super::next_link("</v2/busybox/tags/list?last=b&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/busybox/tags/list?last=b&n=2")
        );
        assert_eq!(super::next_link("<x>; rel=\"prev\""), None);
    }

    #[test]
    fn tag_pages_stay_on_the_registry() {
        let base = "http://127.0.0.1:5000/v2/team/box";
        let page = |link: &str| super::next_page(base, Some(link)).map_err(|e| e.to_string());
        assert_eq!(
            page("</v2/team/box/tags/list?last=a&n=1>; rel=\"next\""),
            Ok(Some("http://127.0.0.1:5000/v2/team/box/tags/list?last=a&n=1".into()))
        );
        assert_eq!(
            page("<http://127.0.0.1:5000/v2/team/box/tags/list?last=b>; rel=\"next\""),
            Ok(Some("http://127.0.0.1:5000/v2/team/box/tags/list?last=b".into()))
        );
        // Hostile: a page on another host, or the same host under another scheme or port.
        for elsewhere in [
            "<http://evil.example/v2/x/tags/list>; rel=\"next\"",
            "<https://127.0.0.1:5000/v2/x/tags/list>; rel=\"next\"",
            "<http://127.0.0.1:50000/v2/x/tags/list>; rel=\"next\"",
            "<//evil.example/v2/x>; rel=\"next\"",
        ] {
            assert!(page(elsewhere).is_err(), "{elsewhere}");
        }
        assert_eq!(super::next_page(base, None).map_err(|e| e.to_string()), Ok(None));
    }
}
