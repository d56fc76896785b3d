//! Build checks over a build's Dockerfile (the rules are the parser's
//! [`rbuild_parser::checks`]): what base images bring comes from the store, the
//! `.dockerignore` from the context.

use rbuild_parser::checks::{self, BaseImage, CheckConfig, CheckInput, Finding};
use rbuild_parser::dockerignore::IgnoreMatcher;
use rbuild_parser::{Dockerfile, StageBase, StageGraph};

use super::{vars, BuildOptions, Platform, Shared};
use crate::error::{Error, Result};
use crate::store::Store;

/// The checks' configuration for a build (`BUILDKIT_DOCKERFILE_CHECK`, else `# check=`).
pub fn config(df: &Dockerfile, options: &BuildOptions) -> Result<CheckConfig> {
    CheckConfig::for_build(df, &options.build_args).map_err(Error::Build)
}

/// Runs the checks; base images are looked up in the store (one that is not there yet
/// leaves its stage's undefined-variable check out).
pub fn run(
    store: &Store,
    df: &Dockerfile,
    options: &BuildOptions,
    ignore: Option<&IgnoreMatcher>,
    config: &CheckConfig,
) -> Vec<Finding> {
    let lookup = |name: &str| -> Option<BaseImage> {
        let image = store.resolve(name).ok()?;
        // Read as rbuild's own config type: it keeps Docker's `Shell`, which OCI's lacks.
        let raw = store.read_blob(image.id()).ok()?;
        let config: super::config::ImageConfig = serde_json::from_slice(&raw).ok()?;
        Some(BaseImage {
            env: config.config.env.clone().unwrap_or_default(),
            shell: config.config.shell.as_ref().is_some_and(|s| !s.is_empty()),
        })
    };
    let input = CheckInput {
        build_args: options.build_args.clone(),
        automatic_args: vars::platform_args(&options.platform, &Platform::host()),
        base: Some(&lookup),
        ignore,
    };
    checks::check(df, &options.dockerfile_text, &input, config)
}

/// The error of a build whose checks found something under `error=true`, as BuildKit
/// words it.
pub fn violation(found: &[Finding]) -> Error {
    let mut rules: Vec<&str> = found.iter().map(|f| f.rule.name).collect();
    rules.sort_unstable();
    rules.dedup();
    Error::Build(format!("lint violation found for rules: {}", rules.join(", ")))
}

/// Brings the base images of the stages in `order` into the store before the build, so
/// that checks see them all (for `error=true`, which must fail before any step runs).
pub(super) fn fetch_bases(shared: &Shared<'_>, graph: &StageGraph, order: &[usize]) -> Result<()> {
    for &i in order {
        if let StageBase::Image(name) = &graph.stages[i].base {
            shared.image(i, name)?;
        }
    }
    Ok(())
}

/// `build --check`: the checks alone, nothing built (base images not in the store leave
/// their stages' undefined-variable check out).
pub fn check_only(store: &Store, df: &Dockerfile, options: &BuildOptions) -> Result<Vec<Finding>> {
    let config = config(df, options)?;
    let context = super::context::BuildContext::open(
        &options.context,
        options.dockerfile_path.as_deref(),
        None,
    )?;
    Ok(run(store, df, options, Some(context.ignore()), &config))
}
