/* Tries system calls that a confined container must not be able to make, each with
 * harmless arguments, and prints one line per call: its name and the errno it failed
 * with (0 when it succeeded). The confinement tests compile it statically (so it runs in
 * any image) and run it inside rbuild's sandbox.
 *
 * Usage: probe NAME...   (no names: every call it knows) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static long clone_with(unsigned long flags) {
  long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, 0, 0);
  return pid;
}

static long try_call(const char *name) {
  char buf[64] = {0};
  if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0);
  if (!strcmp(name, "add_key")) return syscall(SYS_add_key, "user", "rbuild-probe", "x", 1, -2);
  if (!strcmp(name, "request_key")) return syscall(SYS_request_key, "user", "rbuild-probe", 0, 0);
  if (!strcmp(name, "bpf")) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
  }
  if (!strcmp(name, "perf_event_open")) {
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_TASK_CLOCK;
    attr.exclude_kernel = 1;
    return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
  }
  if (!strcmp(name, "unshare_user")) return syscall(SYS_unshare, CLONE_NEWUSER);
  if (!strcmp(name, "unshare_mount")) return syscall(SYS_unshare, CLONE_NEWNS);
  if (!strcmp(name, "clone_newuser")) return clone_with(CLONE_NEWUSER);
  if (!strcmp(name, "clone_newns")) return clone_with(CLONE_NEWNS);
  if (!strcmp(name, "clone3")) {
    unsigned long args[11] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    long pid = syscall(SYS_clone3, args, sizeof args);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, 0, 0);
    return pid;
  }
  if (!strcmp(name, "setns")) return syscall(SYS_setns, 0, CLONE_NEWNET);
  if (!strcmp(name, "mount")) return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0);
  if (!strcmp(name, "umount2")) return syscall(SYS_umount2, "/proc", MNT_DETACH);
  if (!strcmp(name, "pivot_root")) return syscall(SYS_pivot_root, "/", "/");
  if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0);
  if (!strcmp(name, "init_module")) return syscall(SYS_init_module, buf, sizeof buf, "");
  if (!strcmp(name, "finit_module")) return syscall(SYS_finit_module, 0, "", 0);
  if (!strcmp(name, "delete_module")) return syscall(SYS_delete_module, "rbuild_probe", 0);
  if (!strcmp(name, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, AT_FDCWD, buf, O_RDONLY);
  if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0);
  if (!strcmp(name, "reboot")) return syscall(SYS_reboot, 0, 0, 0, 0); /* bad magic: harmless */
  if (!strcmp(name, "swapon")) return syscall(SYS_swapon, "/rbuild-no-such-swap", 0);
  if (!strcmp(name, "syslog")) return syscall(SYS_syslog, 10 /* SIZE_BUFFER */, 0, 0);
  if (!strcmp(name, "acct")) return syscall(SYS_acct, 0);
  if (!strcmp(name, "sethostname")) return syscall(SYS_sethostname, "rbuild-probe", 12);
  if (!strcmp(name, "settimeofday")) return syscall(SYS_settimeofday, 0, 0);
  if (!strcmp(name, "iopl")) return syscall(SYS_iopl, 0);
  if (!strcmp(name, "socket_vsock")) return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
  if (!strcmp(name, "personality_bad")) return syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */);
  if (!strcmp(name, "fsopen")) return syscall(SYS_fsopen, "tmpfs", 0);
  if (!strcmp(name, "open_tree")) return syscall(SYS_open_tree, AT_FDCWD, "/", 0);
  if (!strcmp(name, "quotactl")) return syscall(SYS_quotactl, 0, "/", 0, 0);
  if (!strcmp(name, "lookup_dcookie")) return syscall(SYS_lookup_dcookie, 0, buf, sizeof buf);
  /* Calls that must keep working. */
  if (!strcmp(name, "getpid")) return syscall(SYS_getpid) > 0 ? 0 : -1;
  if (!strcmp(name, "clone_plain")) return clone_with(0) > 0 ? 0 : -1;
  if (!strcmp(name, "personality_query")) return syscall(SYS_personality, 0xffffffff) >= 0 ? 0 : -1;
  if (!strcmp(name, "socket_inet")) return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : -1;
  if (!strcmp(name, "chroot")) return syscall(SYS_chroot, "/");
  errno = ENOENT;
  return -2;
}

static const char *all[] = {
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "unshare_user",
    "unshare_mount", "clone_newuser", "clone_newns", "clone3", "setns", "mount", "umount2",
    "pivot_root", "kexec_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "userfaultfd", "reboot", "swapon", "syslog", "acct", "sethostname",
    "settimeofday", "iopl", "socket_vsock", "personality_bad", "fsopen", "open_tree",
    "quotactl", "lookup_dcookie", "getpid", "clone_plain", "personality_query",
    "socket_inet", "chroot", 0};

int main(int argc, char **argv) {
  const char **names = argc > 1 ? (const char **)argv + 1 : all;
  for (; *names; names++) {
    errno = 0;
    long r = try_call(*names);
    if (r == -2 && errno == ENOENT) {
      printf("%s unknown\n", *names);
      continue;
    }
    printf("%s %d\n", *names, r < 0 ? errno : 0);
  }
  return 0;
}
