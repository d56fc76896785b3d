//! Flags that more than one command takes.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rbuild_registry_client::ClientOptions;

/// Options every registry command takes.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// Reach this registry (`HOST[:PORT]`) over plain HTTP when it does not speak TLS
    /// (loopback registries always may). A certificate that does not verify is an error
    /// either way, never a reason to fall back to HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
    /// Also trust this CA certificate (PEM) for HTTPS.
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_files: Vec<PathBuf>,
    /// How many blobs to transfer at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Seconds a request that moves no blob (ping, token, manifest) may take in all.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    registry_timeout: u64,
    /// Seconds one blob download or upload request may take in all.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    registry_transfer_timeout: u64,
    /// Seconds a connection may go without delivering a byte.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    registry_stall_timeout: u64,
}

impl RegistryArgs {
    /// The registry client's options these flags set.
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            insecure_registries: self.insecure.clone(),
            ca_files: self.ca_files.clone(),
            concurrency: self.concurrency as usize,
            request_timeout: Duration::from_secs(self.registry_timeout),
            transfer_timeout: Duration::from_secs(self.registry_transfer_timeout),
            stall_timeout: Duration::from_secs(self.registry_stall_timeout),
            ..ClientOptions::default()
        }
    }
}

/// A size as docker's flags take it: bytes, or with `k`, `m`, `g` (binary units; a `b`
/// after them is allowed).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1u64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        _ => (lower, 1),
    };
    digits.parse::<u64>().ok().and_then(|n| n.checked_mul(mult))
}

/// `--add-host`, `--shm-size` and `--ulimit`, for RUN steps (`build`) and containers (`run`).
#[derive(Debug, Args, Clone)]
pub struct RunExtrasArgs {
    /// Add a line to /etc/hosts: `NAME:ADDRESS` (repeatable).
    #[arg(long = "add-host", value_name = "NAME:ADDRESS")]
    add_hosts: Vec<String>,
    /// The size of /dev/shm (`128m`, `1g`; 64m when not given).
    #[arg(long = "shm-size", value_name = "SIZE")]
    shm_size: Option<String>,
    /// A resource limit `NAME=SOFT[:HARD]` (repeatable): nofile, nproc, core, stack, ...;
    /// -1 is unlimited.
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimits: Vec<String>,
}

impl RunExtrasArgs {
    /// The checked values.
    pub fn extras(&self) -> anyhow::Result<rbuild_builder::sandbox::RunExtras> {
        use rbuild_builder::sandbox::{parse_add_host, Ulimit};
        let hosts = self
            .add_hosts
            .iter()
            .map(|h| parse_add_host(h).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        let shm_size = match &self.shm_size {
            Some(t) => Some(parse_size(t).filter(|n| *n > 0).ok_or_else(|| {
                anyhow::anyhow!("invalid --shm-size {t:?}: a size like 64m or 1g")
            })?),
            None => None,
        };
        let ulimits = self
            .ulimits
            .iter()
            .map(|u| Ulimit::parse(u).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        Ok(rbuild_builder::sandbox::RunExtras { hosts, shm_size, ulimits })
    }
}
