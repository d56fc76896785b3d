//! Compiles the sandbox's system-call profile (`src/sandbox/seccomp_profile.rs`) to a BPF
//! program for the target architecture, once, at build time, with libseccomp (Debian:
//! libseccomp-dev). libseccomp knows every architecture's call numbers and emits the
//! checks for the 32-bit ABIs a 64-bit kernel also runs; compiling at run time took about
//! 11 ms per sandbox with them, and this way rbuild does not need libseccomp at run time.
//! The program lands in `OUT_DIR/seccomp.bpf`; `sandbox/seccomp.rs` embeds and loads it.

use std::path::PathBuf;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

mod profile {
    #![allow(dead_code)]
    include!("src/sandbox/seccomp_profile.rs");
}

fn arch(name: &str, little_endian: bool) -> Option<ScmpArch> {
    Some(match name {
        "x86_64" => ScmpArch::X8664,
        "x86" => ScmpArch::X86,
        "x32" => ScmpArch::X32,
        "aarch64" => ScmpArch::Aarch64,
        "arm" => ScmpArch::Arm,
        "s390x" => ScmpArch::S390X,
        "s390" => ScmpArch::S390,
        "riscv64" => ScmpArch::Riscv64,
        "powerpc64" if little_endian => ScmpArch::Ppc64Le,
        "powerpc64" => ScmpArch::Ppc64,
        _ => return None,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=src/sandbox/seccomp_profile.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("CARGO_CFG_TARGET_ARCH")?;
    let little = std::env::var("CARGO_CFG_TARGET_ENDIAN").is_ok_and(|e| e == "little");
    let native = arch(&target, little)
        .ok_or_else(|| format!("rbuild's sandbox has no seccomp profile for {target}"))?;
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(profile::EPERM))?;
    // A binary tree of call numbers rather than one comparison after another: the kernel
    // runs the program for every call number when the filter is loaded (to find the calls
    // it can allow without running it again), which took 1.2 ms of each RUN's start with
    // the ~980 sequential instructions; a call's path is now some ten comparisons.
    ctx.set_ctl_optimize(2)?;
    // The context starts with the build machine's architecture: use the target's.
    ctx.add_arch(native)?;
    if ScmpArch::native() != native {
        ctx.remove_arch(ScmpArch::native())?;
    }
    for abi in profile::extra_abis(&target) {
        if let Some(a) = arch(abi, little) {
            ctx.add_arch(a)?;
        }
    }
    for name in profile::ALLOWED.iter().chain(profile::arch_allowed(&target)) {
        // A name libseccomp knows on no architecture has no number to allow.
        if let Ok(call) = ScmpSyscall::from_name(name) {
            ctx.add_rule(ScmpAction::Allow, call)?;
        }
    }
    ctx.add_rule_conditional(
        ScmpAction::Allow,
        ScmpSyscall::from_name("socket")?,
        &[ScmpArgCompare::new(0, ScmpCompareOp::NotEqual, profile::AF_VSOCK)],
    )?;
    for persona in profile::PERSONALITIES {
        ctx.add_rule_conditional(
            ScmpAction::Allow,
            ScmpSyscall::from_name("personality")?,
            &[ScmpArgCompare::new(0, ScmpCompareOp::Equal, *persona)],
        )?;
    }
    ctx.add_rule_conditional(
        ScmpAction::Allow,
        ScmpSyscall::from_name("clone")?,
        &[ScmpArgCompare::new(
            profile::clone_flags_arg(&target),
            ScmpCompareOp::MaskedEqual(profile::CLONE_NAMESPACE_FLAGS),
            0,
        )],
    )?;
    ctx.add_rule(ScmpAction::Errno(profile::ENOSYS), ScmpSyscall::from_name("clone3")?)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("seccomp.bpf");
    let mut file = std::fs::File::create(&out)?;
    ctx.export_bpf(&mut file)?;
    Ok(())
}
