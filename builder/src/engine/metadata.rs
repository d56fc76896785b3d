//! The instructions that change only the image config (ENV, LABEL, EXPOSE, VOLUME, USER,
//! CMD, ENTRYPOINT, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, ARG, MAINTAINER): each adds
//! an empty-layer history entry.

use std::collections::BTreeMap;
use std::time::Duration;

use rbuild_parser::{Command, HealthCheck, Instruction, InstructionKind};

use super::config::{Empty, HealthConfig};
use super::stage::{history_text, State};
use super::{gofmt, vars, Platform};
use crate::error::Result;

/// Applies a metadata instruction to the stage's config and history.
pub(super) fn apply(state: &mut State<'_, '_>, inst: &Instruction) -> Result<()> {
    let created_by = history_text(inst);
    match &inst.kind {
        InstructionKind::Env(pairs) => {
            let done = expand_pairs(state, inst, pairs)?;
            for (k, v) in &done {
                state.config.set_env(k, v);
                // A later ENV wins over an earlier ARG of the name.
                state.arg_env.retain(|(n, _)| n != k);
            }
            let text = done.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            state.add_history(format!("ENV {text}"), true, None);
        }
        InstructionKind::Label(pairs) => {
            let done = expand_pairs(state, inst, pairs)?;
            let labels = state.config.config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &done {
                labels.insert(k.clone(), v.clone());
            }
            let text = done.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
            state.add_history(format!("LABEL {text}"), true, None);
        }
        InstructionKind::Maintainer(name) => {
            state.config.author = Some(name.clone());
            state.add_history(created_by, true, None);
        }
        InstructionKind::Expose(ports) => {
            let mut expanded = Vec::new();
            for p in ports {
                for word in state.expand(inst, p)?.split_whitespace() {
                    expanded.extend(expose_ports(word).map_err(|m| state.error(inst, &m))?);
                }
            }
            let map = state.config.config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &expanded {
                map.insert(p.clone(), Empty {});
            }
            // BuildKit writes the instruction's ports as Go prints a map: sorted keys.
            let mut ports: Vec<&String> = expanded.iter().collect();
            ports.sort();
            ports.dedup();
            let shown: Vec<String> = ports.iter().map(|p| format!("{p}:{{}}")).collect();
            state.add_history(format!("EXPOSE map[{}]", shown.join(" ")), true, None);
        }
        InstructionKind::Volume(paths) => {
            let mut added = Vec::new();
            for p in paths {
                let v = state.expand(inst, p)?;
                if v.trim().is_empty() {
                    return Err(state.error(inst, "VOLUME specified can not be an empty string"));
                }
                added.push(v.clone());
                state.config.config.volumes.get_or_insert_with(BTreeMap::new).insert(v, Empty {});
            }
            // As BuildKit writes it: Go's print of the list.
            state.add_history(format!("VOLUME [{}]", added.join(" ")), true, None);
        }
        InstructionKind::User(user) => {
            let user = state.expand(inst, user)?;
            state.config.config.user = Some(user.clone());
            state.add_history(format!("USER {user}"), true, None);
        }
        InstructionKind::Cmd(command) => {
            // An empty exec form (`CMD []`) leaves the config's Cmd null, as BuildKit does.
            state.config.config.cmd = Some(state.argv(command)).filter(|a| !a.is_empty());
            state.cmd_set = true;
            // BuildKit sets ArgsEscaped for every CMD and ENTRYPOINT (Docker's image spec
            // keeps the field for Windows images).
            state.config.config.args_escaped = Some(true);
            let args = state.config.config.cmd.clone().unwrap_or_default();
            state.add_history(format!("CMD {}", gofmt::quote_list(&args)), true, None);
        }
        InstructionKind::Entrypoint(command) => {
            state.config.config.entrypoint = Some(state.argv(command)).filter(|a| !a.is_empty());
            if !state.cmd_set {
                state.config.config.cmd = None;
            }
            state.config.config.args_escaped = Some(true);
            let args = state.config.config.entrypoint.clone().unwrap_or_default();
            state.add_history(format!("ENTRYPOINT {}", gofmt::quote_list(&args)), true, None);
        }
        InstructionKind::Shell(shell) => {
            state.config.config.shell = Some(shell.clone());
            state.add_history(format!("SHELL [{}]", shell.join(" ")), true, None);
        }
        InstructionKind::StopSignal(signal) => {
            let signal = state.expand(inst, signal)?;
            state.config.config.stop_signal = Some(signal);
            state.add_history(created_by, true, None);
        }
        InstructionKind::Healthcheck(check) => {
            let health = health_config(check);
            state.add_history(health_history(&health), true, None);
            state.config.config.healthcheck = Some(health);
        }
        InstructionKind::Onbuild(inner) => {
            let text = inner.original.trim().to_string();
            // BuildKit keeps ONBUILD in the config only, with no history entry.
            state.config.config.on_build.get_or_insert_with(Vec::new).push(text);
        }
        InstructionKind::Arg(decls) => {
            for (name, default) in decls {
                let value = arg_value(state, inst, name, default.as_deref())?;
                state.args.push(name.clone());
                if let Some(value) = value {
                    state.arg_env.retain(|(n, _)| n != name);
                    state.arg_env.push((name.clone(), value));
                }
            }
            state.add_history(created_by, true, None);
        }
        _ => return Err(state.error(inst, "not a metadata instruction")),
    }
    Ok(())
}

/// `KEY=VALUE` pairs with both sides expanded.
fn expand_pairs(
    state: &State<'_, '_>,
    inst: &Instruction,
    pairs: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    pairs.iter().map(|(k, v)| Ok((state.expand(inst, k)?, state.expand(inst, v)?))).collect()
}

/// HEALTHCHECK as Docker's config has it (durations in nanoseconds).
fn health_config(check: &HealthCheck) -> HealthConfig {
    match check {
        HealthCheck::None => HealthConfig { test: vec!["NONE".into()], ..Default::default() },
        HealthCheck::Cmd { command, interval, timeout, start_period, start_interval, retries } => {
            let test = match command {
                Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                Command::Exec(v) => {
                    std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect()
                }
            };
            HealthConfig {
                test,
                interval: nanos(*interval),
                timeout: nanos(*timeout),
                start_period: nanos(*start_period),
                start_interval: nanos(*start_interval),
                retries: *retries,
            }
        }
    }
}

/// HEALTHCHECK's history entry as BuildKit writes it: Go's `%q` of its config struct
/// (`&{["CMD-SHELL" "true"] "5s" "0s" "0s" "0s" '\x00'}`, unset durations `0s`).
fn health_history(h: &HealthConfig) -> String {
    let d = |n: Option<u64>| gofmt::quote(&gofmt::duration(n.unwrap_or(0)));
    format!(
        "HEALTHCHECK &{{{} {} {} {} {} {}}}",
        gofmt::quote_list(&h.test),
        d(h.interval),
        d(h.timeout),
        d(h.start_period),
        d(h.start_interval),
        gofmt::quote_rune(h.retries.map_or(0, i64::from))
    )
}

/// Parses a Go duration in nanoseconds.
fn nanos(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_nanos() as u64)
}

/// The value of a stage ARG: `--build-arg`, else its default, else the global ARG's value,
/// else the automatic platform value.
fn arg_value(
    state: &State<'_, '_>,
    inst: &Instruction,
    name: &str,
    default: Option<&str>,
) -> Result<Option<String>> {
    let shared = state.shared;
    if let Some(v) = shared.options.build_args.get(name) {
        if let Ok(mut used) = shared.used_args.lock() {
            used.insert(name.to_string());
        }
        return Ok(Some(v.clone()));
    }
    if let Some(d) = default {
        return state.expand(inst, d).map(Some);
    }
    if let Some((_, Some(v))) = shared.graph.global_args.iter().find(|(n, _)| n == name) {
        return Ok(Some(v.clone()));
    }
    let platform_args = vars::platform_args(&shared.options.platform, &Platform::host());
    Ok(platform_args.into_iter().find(|(n, _)| n == name).map(|(_, v)| v))
}

/// `EXPOSE` words: `80`, `80/udp`, `8000-8002/tcp`.
fn expose_ports(word: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let proto = proto.to_lowercase();
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("invalid proto: {proto}"));
    }
    let bad = || format!("invalid containerPort: {ports}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => {
            (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?)
        }
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo || hi - lo > 10_000 {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}
