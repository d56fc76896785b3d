//! The instruction graph: build stages, what each is based on, and the stages each needs.

use std::collections::BTreeMap;

use crate::error::{ErrorKind, ParseError, Span};
use crate::instructions::{Dockerfile, Instruction, InstructionKind};
use crate::shell::{Lexer, MapEnv};

/// `--build-arg` values given to a build, overriding ARG defaults.
pub type BuildArgs = BTreeMap<String, String>;

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    /// An image reference (ARGs expanded).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
    /// The empty file system.
    Scratch,
}

/// Why one stage needs another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// `FROM <stage>`.
    Base,
    /// `COPY --from=<stage>`.
    CopyFrom,
    /// `RUN --mount=from=<stage>`.
    MountFrom,
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Position among the stages, from 0.
    pub index: usize,
    /// Name after `AS`, lower case.
    pub name: Option<String>,
    /// What it starts from.
    pub base: StageBase,
    /// `FROM --platform`, expanded.
    pub platform: Option<String>,
    /// The FROM instruction's span.
    pub span: Span,
    /// Instructions after FROM, up to the next FROM.
    pub instructions: Vec<Instruction>,
    /// Stages this one needs, each with why, in order of first use.
    pub edges: Vec<(usize, EdgeKind)>,
    /// Images named by `COPY --from` or `RUN --mount from=` that are not stages.
    pub image_refs: Vec<String>,
}

/// The stage graph of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// ARGs declared before the first FROM, with their values after `--build-arg`.
    pub global_args: Vec<(String, Option<String>)>,
    /// The stages, in file order.
    pub stages: Vec<Stage>,
}

fn graph_error(msg: String, span: Span) -> ParseError {
    ParseError::new(ErrorKind::Graph(msg), span)
}

impl StageGraph {
    /// Builds the graph. `args` are the build's `--build-arg`s, used to expand global ARGs
    /// in `FROM` and `--from`.
    pub fn build(df: &Dockerfile, args: &BuildArgs) -> Result<Self, ParseError> {
        let mut global_args = Vec::new();
        let mut env = MapEnv::default();
        let lexer = Lexer::new(df.tree.escape);
        let mut stages: Vec<Stage> = Vec::new();

        for inst in &df.instructions {
            match &inst.kind {
                InstructionKind::Arg(decls) if stages.is_empty() => {
                    for (name, default) in decls {
                        let value = match args.get(name) {
                            Some(v) => Some(v.clone()),
                            None => default
                                .as_ref()
                                .map(|d| lexer.process_word(d, &env))
                                .transpose()
                                .map_err(|e| ParseError::new(ErrorKind::Shell(e.to_string()), inst.span))?,
                        };
                        if let Some(v) = &value {
                            env.set(name.clone(), v.clone());
                        }
                        global_args.push((name.clone(), value));
                    }
                }
                InstructionKind::From { image, platform, name } => {
                    let expand = |word: &str| {
                        lexer
                            .process_word(word, &env)
                            .map_err(|e| ParseError::new(ErrorKind::Shell(e.to_string()), inst.span))
                    };
                    let image = expand(image)?;
                    if image.is_empty() {
                        return Err(graph_error("base name (FROM) should not be blank".into(), inst.span));
                    }
                    let platform = platform.as_deref().map(expand).transpose()?;
                    if let Some(name) = name {
                        if name == "scratch" || name == "context" {
                            return Err(graph_error(format!("{name:?} is a reserved name and cannot be a stage name"), inst.span));
                        }
                        if stages.iter().any(|s| s.name.as_deref() == Some(name)) {
                            return Err(graph_error(format!("duplicate stage name {name:?}"), inst.span));
                        }
                    }
                    let lower = image.to_lowercase();
                    let base = if lower == "scratch" {
                        StageBase::Scratch
                    } else if let Some(prev) = stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
                        StageBase::Stage(prev.index)
                    } else {
                        StageBase::Image(image)
                    };
                    let index = stages.len();
                    let edges = match base {
                        StageBase::Stage(i) => vec![(i, EdgeKind::Base)],
                        _ => Vec::new(),
                    };
                    stages.push(Stage {
                        index,
                        name: name.clone(),
                        base,
                        platform,
                        span: inst.span,
                        instructions: Vec::new(),
                        edges,
                        image_refs: Vec::new(),
                    });
                }
                _ => match stages.last_mut() {
                    Some(stage) => stage.instructions.push(inst.clone()),
                    None => {
                        return Err(graph_error(
                            "no build stage in current context: only ARG can come before the first FROM".into(),
                            inst.span,
                        ))
                    }
                },
            }
        }
        if stages.is_empty() {
            let span = df.instructions.first().map(|i| i.span).unwrap_or(Span::on_line(1, 1, 1));
            return Err(graph_error("the Dockerfile has no FROM instruction".into(), span));
        }
        let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
        for stage in &mut stages {
            // `--from` may name its stage through the stage's own ARGs and ENVs too (which
            // BuildKit refuses): expand with them as they stand at each instruction.
            let mut refs: Vec<(String, EdgeKind, Span)> = Vec::new();
            let mut stage_env = env.clone();
            for inst in &stage.instructions {
                let shell_err = |e: crate::shell::ShellError| {
                    ParseError::new(ErrorKind::Shell(e.to_string()), inst.span)
                };
                for (r, k) in stage_refs(inst) {
                    let expanded = lexer.process_word(&r, &stage_env).map_err(shell_err)?;
                    refs.push((expanded, k, inst.span));
                }
                // A value that does not expand is the build's error to report where it is
                // used; here it only names nothing.
                match &inst.kind {
                    InstructionKind::Arg(decls) => {
                        for (name, default) in decls {
                            let value = match (args.get(name), default) {
                                (Some(v), _) => Some(v.clone()),
                                (None, Some(d)) => lexer.process_word(d, &stage_env).ok(),
                                (None, None) => None,
                            };
                            if let Some(v) = value {
                                stage_env.set(name.clone(), v);
                            }
                        }
                    }
                    InstructionKind::Env(pairs) => {
                        let before = stage_env.clone();
                        for (k, v) in pairs {
                            if let (Ok(k), Ok(v)) =
                                (lexer.process_word(k, &before), lexer.process_word(v, &before))
                            {
                                stage_env.set(k, v);
                            }
                        }
                    }
                    _ => {}
                }
            }
            for (reference, kind, span) in refs {
                let lower = reference.to_lowercase();
                let target = if let Some(i) =
                    names.iter().position(|n| n.as_deref() == Some(lower.as_str()))
                {
                    Some(i)
                } else if !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_digit()) {
                    match reference.parse::<usize>() {
                        Ok(i) if i < names.len() => Some(i),
                        _ => {
                            return Err(graph_error(
                                format!("invalid stage index {reference}: there is no such stage"),
                                span,
                            ))
                        }
                    }
                } else {
                    None
                };
                match target {
                    Some(i) if i == stage.index => {
                        return Err(graph_error(
                            format!("stage {} refers to itself", stage_label(stage)),
                            span,
                        ))
                    }
                    Some(i) => {
                        if !stage.edges.iter().any(|(t, _)| *t == i) {
                            stage.edges.push((i, kind));
                        }
                    }
                    None => {
                        if lower == "scratch" {
                            continue;
                        }
                        if !stage.image_refs.contains(&reference) {
                            stage.image_refs.push(reference);
                        }
                    }
                }
            }
        }
        Ok(StageGraph { global_args, stages })
    }

    /// The index of the stage `target` names (a name or an index); the last stage when
    /// `None`.
    pub fn target_index(&self, target: Option<&str>) -> Result<usize, ParseError> {
        let Some(target) = target else { return Ok(self.stages.len() - 1) };
        let lower = target.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| target.parse::<usize>().ok().filter(|i| *i < self.stages.len()))
            .ok_or_else(|| {
                graph_error(
                    format!("target stage {target:?} could not be found"),
                    self.stages[0].span,
                )
            })
    }

    /// The stages that building `target` needs, in an order where each comes after every
    /// stage it depends on (ties broken by file order). Errors on a dependency cycle.
    pub fn order_for(&self, target: Option<&str>) -> Result<Vec<usize>, ParseError> {
        let target = self.target_index(target)?;
        // Depth-first with colours; an explicit stack, so no recursion on hostile input.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut mark = vec![Mark::New; self.stages.len()];
        let mut order = Vec::new();
        let mut stack: Vec<(usize, usize)> = vec![(target, 0)];
        mark[target] = Mark::Open;
        while let Some((node, next_edge)) = stack.pop() {
            let stage = &self.stages[node];
            let mut deps: Vec<usize> = stage.edges.iter().map(|(t, _)| *t).collect();
            deps.sort_unstable();
            if let Some(&dep) = deps.get(next_edge) {
                stack.push((node, next_edge + 1));
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::Open;
                        stack.push((dep, 0));
                    }
                    Mark::Open => {
                        return Err(graph_error(
                            format!(
                                "circular dependency detected on stage: {}",
                                stage_label(&self.stages[dep])
                            ),
                            self.stages[dep].span,
                        ))
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                order.push(node);
            }
        }
        Ok(order)
    }

    /// The graph in Graphviz DOT: a node per stage, an edge per dependency.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph stages {\n  rankdir=LR;\n  node [shape=box];\n");
        for s in &self.stages {
            let base = match &s.base {
                StageBase::Image(i) => i.clone(),
                StageBase::Stage(i) => format!("stage {i}"),
                StageBase::Scratch => "scratch".to_string(),
            };
            let label = format!("{}\\n{}", stage_label(s), base.replace('"', "\\\""));
            out.push_str(&format!("  s{} [label=\"{label}\"];\n", s.index));
            for img in &s.image_refs {
                out.push_str(&format!(
                    "  \"{}\" [shape=ellipse];\n  \"{0}\" -> s{};\n",
                    img.replace('"', "\\\""),
                    s.index
                ));
            }
        }
        for s in &self.stages {
            for (t, kind) in &s.edges {
                let style = match kind {
                    EdgeKind::Base => "solid",
                    EdgeKind::CopyFrom => "dashed",
                    EdgeKind::MountFrom => "dotted",
                };
                out.push_str(&format!("  s{t} -> s{} [style={style}];\n", s.index));
            }
        }
        out.push_str("}\n");
        out
    }
}

fn stage_label(stage: &Stage) -> String {
    match &stage.name {
        Some(n) => format!("{} ({n})", stage.index),
        None => stage.index.to_string(),
    }
}

/// Stage references an instruction makes: `COPY --from` and `RUN --mount from=`.
fn stage_refs(inst: &Instruction) -> Vec<(String, EdgeKind)> {
    match &inst.kind {
        InstructionKind::Copy(c) => {
            c.from.iter().map(|f| (f.clone(), EdgeKind::CopyFrom)).collect()
        }
        InstructionKind::Run { mounts, .. } => {
            mounts.iter().filter_map(|m| m.from.clone()).map(|f| (f, EdgeKind::MountFrom)).collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn graph(src: &str) -> Result<StageGraph, ParseError> {
        StageGraph::build(&parse(src)?, &BuildArgs::new())
    }

    #[test]
    fn stages_and_order() {
        let g = graph(
            "ARG BASE=alpine\nFROM $BASE AS a\nFROM scratch AS b\nCOPY --from=a /x /x\nFROM a AS c\nFROM b\nRUN --mount=type=bind,from=c,target=/c true\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.stages[0].base, StageBase::Image("alpine".into()));
        assert_eq!(g.stages[1].base, StageBase::Scratch);
        assert_eq!(g.stages[2].base, StageBase::Stage(0));
        assert_eq!(g.order_for(None).unwrap_or_default(), vec![0, 1, 2, 3]);
        assert_eq!(g.order_for(Some("b")).unwrap_or_default(), vec![0, 1]);
        assert!(g.order_for(Some("nope")).is_err());
    }

    #[test]
    fn errors() {
        assert!(graph("FROM a AS x\nFROM b AS x\n").is_err());
        assert!(graph("FROM a AS scratch\n").is_err());
        assert!(graph("FROM a AS x\nCOPY --from=y /a /b\nFROM b AS y\nCOPY --from=x /a /b\n")
            .and_then(|g| g.order_for(None))
            .is_err());
        assert!(graph("FROM a\nCOPY --from=3 /a /b\n").is_err());
        assert!(graph("RUN x\nFROM a\n").is_err());
        let args = BuildArgs::from([("V".to_string(), "3.19".to_string())]);
        let g = StageGraph::build(
            &parse("ARG V=1\nFROM alpine:$V\n").unwrap_or_else(|e| panic!("{e}")),
            &args,
        );
        assert_eq!(
            g.map(|g| g.stages[0].base.clone()).ok(),
            Some(StageBase::Image("alpine:3.19".into()))
        );
    }
}
