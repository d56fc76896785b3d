//! Build variables as Docker scopes them: ARGs declared in a stage (with `--build-arg`
//! overrides and the global ARGs' values), ENV on top of them, the predefined proxy ARGs
//! and the automatic platform ARGs.

use rbuild_parser::shell::MapEnv;

use super::Platform;

/// ARGs every build accepts without a declaration; passed to RUN, kept out of the
/// history and cache keys unless a stage declares them.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Whether `--build-arg name` needs no ARG to be used.
pub fn is_predefined(name: &str) -> bool {
    PROXY_ARGS.contains(&name) || name == "BUILDKIT_INLINE_CACHE" || name == "SOURCE_DATE_EPOCH"
}

/// The automatic platform ARGs (`TARGETPLATFORM`, `BUILDARCH` ...).
pub fn platform_args(target: &Platform, build: &Platform) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, p) in [("TARGET", target), ("BUILD", build)] {
        out.push((format!("{prefix}PLATFORM"), p.to_string()));
        out.push((format!("{prefix}OS"), p.os.clone()));
        out.push((format!("{prefix}ARCH"), p.architecture.clone()));
        out.push((format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default()));
    }
    out
}

/// The variables an instruction's words are expanded with: the stage's ARGs, then ENV
/// over them (an ENV always wins over an ARG of the same name).
pub fn expansion_env(args: &[(String, Option<String>)], env: &[String]) -> MapEnv {
    let mut m = MapEnv::default();
    for (k, v) in args {
        if let Some(v) = v {
            m.set(k.clone(), v.clone());
        }
    }
    for kv in env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        m.set(k.to_string(), v.to_string());
    }
    m
}

/// The environment of a RUN: the image's ENV plus the stage's ARGs that ENV does not
/// set, and the proxy ARGs given on the command line.
pub fn run_env(
    args: &[(String, Option<String>)],
    env: &[String],
    proxies: &[(String, String)],
) -> Vec<String> {
    let mut out: Vec<String> = env.to_vec();
    let set = |out: &Vec<String>, k: &str| {
        out.iter().any(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == k)
    };
    for (k, v) in args {
        if let Some(v) = v {
            if !set(&out, k) {
                out.push(format!("{k}={v}"));
            }
        }
    }
    for (k, v) in proxies {
        if !set(&out, k) {
            out.push(format!("{k}={v}"));
        }
    }
    out
}
