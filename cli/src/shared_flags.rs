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
