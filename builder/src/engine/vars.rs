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

/// A stage's variables as BuildKit keeps them (its LLB state's environment): the image's
/// ENV, with each ARG value set over it in order, later instructions winning. An ARG after
/// an ENV of the same name wins, unlike what the Dockerfile reference says ("ENV always
/// overrides ARG"): BuildKit's `ARG` adds to the same environment `ENV` does, and its RUN
/// sees the later one.
pub fn stage_vars(env: &[String], arg_env: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = env.to_vec();
    for (k, v) in arg_env {
        set_var(&mut out, k, v);
    }
    out
}

/// Sets `key` in a `KEY=VALUE` list, in place when it is there, else at the end.
pub fn set_var(vars: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match vars.iter_mut().find(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == key) {
        Some(kv) => *kv = entry,
        None => vars.push(entry),
    }
}

/// The value of `key` in a `KEY=VALUE` list.
pub fn get_var<'v>(vars: &'v [String], key: &str) -> Option<&'v str> {
    vars.iter().find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// The variables an instruction's words are expanded with.
pub fn expansion_env(vars: &[String]) -> MapEnv {
    let mut m = MapEnv::default();
    for kv in vars {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        m.set(k.to_string(), v.to_string());
    }
    m
}

/// The environment of a RUN: the stage's variables, then the proxy variables of the
/// command line's `--build-arg`s, each under both its upper- and lower-case name
/// (`--build-arg HTTP_PROXY=x` sets `HTTP_PROXY` and `http_proxy`), as BuildKit passes
/// them whether or not the stage declares them. When both spellings are given with
/// different values BuildKit picks either (it walks a Go map); rbuild takes the
/// lower-case one.
pub fn run_env(
    vars: &[String],
    build_args: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = vars.to_vec();
    for name in PROXY_ARGS.iter().filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        let value = build_args
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .max_by_key(|(k, _)| k.as_str() == *name)
            .map(|(_, v)| v);
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            set_var(&mut out, &name.to_uppercase(), v);
            set_var(&mut out, name, v);
        }
    }
    out
}
