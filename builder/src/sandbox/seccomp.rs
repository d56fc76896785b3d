//! The system-call filter every sandboxed command runs under: the same calls allowed and
//! refused, with the same errno, as Docker's default seccomp profile gives a container
//! with Docker's default capabilities. Everything not allowed fails with EPERM.
//!
//! The profile is data ([`profile`]); `build.rs` compiles it with libseccomp to a BPF
//! program for the target architecture, covering the 32-bit ABIs that the native kernel
//! also runs (i386 and x32 on x86_64, arm on aarch64), as Docker's filter does, so a
//! 32-bit program meets the same rules rather than none. The program is embedded here
//! and loaded with `prctl(PR_SET_SECCOMP)`: nothing is compiled at run time.

/// The profile as data (the same file `build.rs` compiles).
#[path = "seccomp_profile.rs"]
pub mod profile;

use crate::error::{Error, Result};

/// The compiled filter: `struct sock_filter` entries (8 bytes each, native byte order).
static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/seccomp.bpf"));

/// The filter's instructions.
fn instructions() -> Vec<nix::libc::sock_filter> {
    PROGRAM
        .chunks_exact(8)
        .map(|c| nix::libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Loads the filter into the calling process (and so every process it starts). Call it
/// last before `execve`, after `no_new_privs` (which the kernel requires of a process
/// without CAP_SYS_ADMIN).
pub fn install() -> Result<()> {
    let filter = instructions();
    let program = nix::libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| Error::Sandbox("seccomp: the filter is too long".into()))?,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `program` points at `filter`, which lives until the call returns; the kernel
    // copies the program and keeps no pointer to it.
    let rc = unsafe {
        nix::libc::prctl(
            nix::libc::PR_SET_SECCOMP,
            nix::libc::SECCOMP_MODE_FILTER as nix::libc::c_ulong,
            &program as *const nix::libc::sock_fprog as nix::libc::c_ulong,
            0 as nix::libc::c_ulong,
            0 as nix::libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(Error::Sandbox(format!(
            "seccomp: loading the filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::profile::*;
    use super::*;

    #[test]
    fn the_program_is_whole() {
        assert!(!PROGRAM.is_empty() && PROGRAM.len().is_multiple_of(8), "{} bytes", PROGRAM.len());
        let first = instructions()[0];
        // BPF_LD | BPF_W | BPF_ABS of offset 4: the architecture is checked first.
        assert_eq!((first.code, first.k), (0x20, 4), "the filter starts with the arch check");
    }

    #[test]
    fn the_profile_holds_the_calls_that_matter() {
        for needed in ["execve", "read", "write", "mknod", "chroot", "setgroups", "ptrace"] {
            assert!(
                ALLOWED.contains(&needed),
                "{needed} must stay allowed: package managers use it"
            );
        }
        for refused in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "finit_module",
            "open_by_handle_at",
            "userfaultfd",
            "reboot",
            "swapon",
            "pivot_root",
            "syslog",
            "sethostname",
            "acct",
            "clone",
            "clone3",
            "socket",
            "personality",
        ] {
            assert!(!ALLOWED.contains(&refused), "{refused} must stay refused or conditional");
        }
        assert_eq!(extra_abis("x86_64"), ["x86", "x32"]);
    }
}
