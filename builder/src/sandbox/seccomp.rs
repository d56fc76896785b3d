//! The system-call filter every sandboxed command runs under: the same calls allowed and
//! refused, with the same errno, as Docker's default seccomp profile gives a container
//! with Docker's default capabilities (the profile's rules that a capability we do not
//! grant would switch on are left out; the one we grant, CAP_SYS_CHROOT, switches on
//! `chroot`).
//!
//! The profile is written here as data in rbuild's own form (the facts of Docker's
//! `profiles/seccomp/default.json`, whose text is not copied): a list of calls always
//! allowed, a few allowed only with certain arguments, and one answered with ENOSYS.
//! Everything else fails with EPERM. libseccomp turns it into BPF: it knows each
//! architecture's numbers for the names, and covers the 32-bit ABIs a 64-bit kernel also
//! runs (i386 and x32 on x86_64, arm on aarch64), as Docker's filter does, so a 32-bit
//! program meets the same rules rather than none.

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::error::{Error, Result};

/// Calls allowed whatever their arguments. Names an architecture does not have are
/// skipped there.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    // Docker allows these from kernel 4.8 on, where ptrace can no longer bypass the
    // filter; rbuild needs a newer kernel anyway (overlayfs in user namespaces).
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    // Switched on by CAP_SYS_CHROOT, which the command keeps.
    "chroot",
];

/// Calls allowed only on some architectures (names as libseccomp spells them).
fn arch_allowed() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &["arch_prctl", "modify_ldt"]
    } else if cfg!(target_arch = "aarch64") || cfg!(target_arch = "arm") {
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ]
    } else if cfg!(target_arch = "s390x") {
        &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]
    } else if cfg!(target_arch = "riscv64") {
        &["riscv_flush_icache"]
    } else if cfg!(target_arch = "powerpc64") {
        &["sync_file_range2", "swapcontext"]
    } else {
        &[]
    }
}

/// The 32-bit (or alternative) ABIs that the native kernel also runs, filtered the same.
fn extra_arches() -> &'static [ScmpArch] {
    if cfg!(target_arch = "x86_64") {
        &[ScmpArch::X86, ScmpArch::X32]
    } else if cfg!(target_arch = "aarch64") {
        &[ScmpArch::Arm]
    } else if cfg!(target_arch = "s390x") {
        &[ScmpArch::S390]
    } else {
        &[]
    }
}

/// `personality(2)` values allowed, as in Docker's profile: PER_LINUX (0), PER_LINUX32 (8),
/// each with UNAME26 (0x20000), and 0xffffffff, which only asks for the current one.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// `clone(2)` flags that make new namespaces (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER,
/// NEWPID, NEWNET): a clone with any of them is refused, without CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

/// `AF_VSOCK`: sockets of this family reach the hypervisor; refused.
const AF_VSOCK: u64 = 40;

/// EPERM: what every call not allowed returns.
const EPERM: i32 = 1;
/// ENOSYS: what `clone3` returns (its flags cannot be inspected), so that C libraries
/// fall back to `clone`, whose flags the filter checks.
const ENOSYS: i32 = 38;

fn seccomp_err(what: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| Error::Conflict(format!("seccomp: {what}: {e}"))
}

/// Builds the filter. Kept apart from [`install`] so that tests can look at it.
pub fn filter() -> Result<ScmpFilterContext> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(EPERM))
        .map_err(seccomp_err("creating the filter"))?;
    for arch in extra_arches() {
        // A kernel built without that ABI refuses it: its programs cannot run anyway.
        let _ = ctx.add_arch(*arch);
    }
    let allow = |ctx: &mut ScmpFilterContext, name: &str| -> Result<()> {
        // A name libseccomp does not know on any architecture has no number to allow.
        let Ok(call) = ScmpSyscall::from_name(name) else { return Ok(()) };
        ctx.add_rule(ScmpAction::Allow, call).map(|_| ()).map_err(seccomp_err(name))
    };
    for name in ALLOWED.iter().chain(arch_allowed()) {
        allow(&mut ctx, name)?;
    }
    let call = |name: &str| ScmpSyscall::from_name(name).map_err(seccomp_err(name));
    let socket = call("socket")?;
    ctx.add_rule_conditional(
        ScmpAction::Allow,
        socket,
        &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, AF_VSOCK)],
    )
    .map_err(seccomp_err("socket"))?;
    let personality = call("personality")?;
    for persona in PERSONALITIES {
        ctx.add_rule_conditional(
            ScmpAction::Allow,
            personality,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, *persona)],
        )
        .map_err(seccomp_err("personality"))?;
    }
    // s390 passes clone's flags as the second argument.
    let flags_arg = if cfg!(target_arch = "s390x") { 1 } else { 0 };
    ctx.add_rule_conditional(
        ScmpAction::Allow,
        call("clone")?,
        &[ScmpArgCompare::new(flags_arg, ScmpCompareOp::MaskedEqual(CLONE_NAMESPACE_FLAGS), 0)],
    )
    .map_err(seccomp_err("clone"))?;
    if let Ok(clone3) = ScmpSyscall::from_name("clone3") {
        ctx.add_rule(ScmpAction::Errno(ENOSYS), clone3).map_err(seccomp_err("clone3"))?;
    }
    Ok(ctx)
}

/// Loads the filter into the calling process (and so every process it starts). Call it
/// last before `execve`, after `no_new_privs`.
pub fn install() -> Result<()> {
    filter()?.load().map_err(seccomp_err("loading the filter"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_builds_and_holds_the_calls_that_matter() {
        assert!(filter().is_ok());
        for needed in ["execve", "clone", "read", "write", "mknod", "chroot", "setgroups"] {
            assert!(
                ALLOWED.contains(&needed) || needed == "clone",
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
        ] {
            assert!(!ALLOWED.contains(&refused), "{refused} must stay refused");
        }
    }
}
