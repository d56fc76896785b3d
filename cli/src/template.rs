//! Go `text/template`, as docker's `--format` flags take it, over JSON values.
//!
//! Written here rather than taken from a crate: the one Rust implementation of Go templates
//! (gtmpl) ranges over maps in hash order (Go: sorted keys), prints lists and maps in Rust's
//! debug form (Go: `[a b]`, `map[k:v]`) and runs a `range`'s `else` after a non-empty
//! range, so scripts written for docker would print other text. Covered: text and actions
//! with `{{-`/`-}}` trimming; fields (`.A.B`), `.`, `$`, variables (`$x := ...`, `$i, $v :=`
//! in range); pipelines with `|`; parentheses; string, raw string, number, bool and nil
//! literals; `if`/`else if`/`else`, `range`, `with`, `end`; Go's functions `and or not len
//! index print printf println eq ne lt le gt ge` and docker's `json join split lower upper
//! title truncate pad`. Not covered: `define`/`template`/`block`, comments, methods.

use std::fmt::Write as _;

use serde_json::Value;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If { branches: Vec<(Pipeline, Vec<Node>)>, otherwise: Vec<Node> },
    Range { pipe: Pipeline, body: Vec<Node>, otherwise: Vec<Node> },
    With { pipe: Pipeline, body: Vec<Node>, otherwise: Vec<Node> },
}

#[derive(Debug, Clone)]
struct Pipeline {
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    decl: Vec<String>,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the data the template was given).
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    /// `(pipeline).A.B`.
    Sub(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    Pipe,
    Open,
    Close(Vec<String>),
    Declare,
    Assign,
    Comma,
}

/// An error of parsing or executing a template, said the way Go's package words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error(msg.into()))
}

impl Template {
    /// Parses a template.
    pub fn parse(source: &str) -> Result<Template, Error> {
        let pieces = split(source)?;
        check_nesting(&pieces)?;
        let mut at = 0;
        let (nodes, end) = parse_list(&pieces, &mut at)?;
        match end {
            None => Ok(Template { nodes }),
            Some(word) => err(format!("template: unexpected {{{{{word}}}}}")),
        }
    }

    /// Executes the template with `data` as `.` and `$`.
    pub fn execute(&self, data: &Value) -> Result<String, Error> {
        let mut out = String::new();
        let mut state = State { vars: vec![("$".to_string(), data.clone())] };
        state.walk(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// A piece of the source: text, or the tokens of one action.
#[derive(Debug)]
enum Piece {
    Text(String),
    Action(Vec<Tok>),
}

/// How deep blocks (`if`, `range`, `with`) and parentheses may nest: deeper templates are
/// refused rather than parsed by recursion that could exhaust the stack.
const MAX_NESTING: usize = 100;

fn check_nesting(pieces: &[Piece]) -> Result<(), Error> {
    let mut blocks = 0usize;
    for piece in pieces {
        let Piece::Action(toks) = piece else { continue };
        match toks.first() {
            Some(Tok::Ident(w)) if ["if", "range", "with"].contains(&w.as_str()) => blocks += 1,
            Some(Tok::Ident(w)) if w == "end" => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        let mut parens = 0usize;
        for t in toks {
            match t {
                Tok::Open => parens += 1,
                Tok::Close(_) => parens = parens.saturating_sub(1),
                _ => {}
            }
            if parens > MAX_NESTING {
                return err("template: parentheses nest too deep");
            }
        }
        if blocks > MAX_NESTING {
            return err("template: blocks nest too deep");
        }
    }
    Ok(())
}

/// Splits the source into text and actions, applying `{{-` and `-}}` trimming.
fn split(source: &str) -> Result<Vec<Piece>, Error> {
    let mut pieces = Vec::new();
    let mut rest = source;
    let mut trim_next = false;
    while !rest.is_empty() {
        let (text, after) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        let mut text = if trim_next { text.trim_start() } else { text };
        let Some(after) = after else {
            pieces.push(Piece::Text(text.to_string()));
            break;
        };
        let mut inner = after;
        if let Some(t) = after.strip_prefix("- ") {
            text = text.trim_end();
            inner = t;
        }
        pieces.push(Piece::Text(text.to_string()));
        let (toks, tail, trim) = lex_action(inner)?;
        pieces.push(Piece::Action(toks));
        trim_next = trim;
        rest = tail;
    }
    Ok(pieces)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Reads `.A.B` from the start of `s`: the names and how many bytes they took.
fn field_chain(s: &str) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut used = 0;
    while let Some(after) = s[used..].strip_prefix('.') {
        let len = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        if len == 0 {
            break;
        }
        names.push(after[..len].to_string());
        used += 1 + len;
    }
    (names, used)
}

/// Tokenizes one action up to its `}}`: its tokens, the source after it, and whether it
/// ended with `-}}`.
fn lex_action(s: &str) -> Result<(Vec<Tok>, &str, bool), Error> {
    let mut toks = Vec::new();
    let mut i = 0;
    loop {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else {
            return err("template: unclosed action");
        };
        if let Some(after) = rest.strip_prefix(" -}}") {
            return Ok((toks, after, true));
        }
        if let Some(after) = rest.strip_prefix("}}") {
            return Ok((toks, after, false));
        }
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let (tok, len) = lex_token(rest)?;
        toks.push(tok);
        i += len;
    }
}

fn lex_token(rest: &str) -> Result<(Tok, usize), Error> {
    let c = rest.chars().next().unwrap_or(' ');
    Ok(match c {
        '|' => (Tok::Pipe, 1),
        '(' => (Tok::Open, 1),
        ')' => {
            let (names, used) = field_chain(&rest[1..]);
            (Tok::Close(names), 1 + used)
        }
        ',' => (Tok::Comma, 1),
        ':' if rest.starts_with(":=") => (Tok::Declare, 2),
        '=' => (Tok::Assign, 1),
        '.' => {
            let (names, used) = field_chain(rest);
            (Tok::Field(names), used.max(1))
        }
        '$' => {
            let len = rest[1..].find(|c: char| !is_ident(c)).unwrap_or(rest.len() - 1);
            let (names, used) = field_chain(&rest[1 + len..]);
            (Tok::Var(rest[..1 + len].to_string(), names), 1 + len + used)
        }
        '"' => {
            let mut end = None;
            let mut escaped = false;
            for (j, ch) in rest.char_indices().skip(1) {
                match ch {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        end = Some(j);
                        break;
                    }
                    _ => {}
                }
            }
            let Some(end) = end else { return err("template: unterminated quoted string") };
            let text: String = serde_json::from_str(&rest[..=end])
                .map_err(|_| Error(format!("template: bad string {}", &rest[..=end])))?;
            (Tok::Lit(Value::String(text)), end + 1)
        }
        '`' => {
            let Some(end) = rest[1..].find('`') else {
                return err("template: unterminated raw string");
            };
            (Tok::Lit(Value::String(rest[1..1 + end].to_string())), end + 2)
        }
        c if c.is_ascii_digit() || c == '-' || c == '+' => {
            let len = rest[1..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
                .map_or(rest.len(), |l| l + 1);
            let text = &rest[..len];
            let v = if let Ok(n) = text.parse::<i64>() {
                Value::from(n)
            } else if let Ok(f) = text.parse::<f64>() {
                Value::from(f)
            } else {
                return err(format!("template: bad number syntax: {text:?}"));
            };
            (Tok::Lit(v), len)
        }
        c if is_ident(c) => {
            let len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
            let word = &rest[..len];
            let tok = match word {
                "true" => Tok::Lit(Value::Bool(true)),
                "false" => Tok::Lit(Value::Bool(false)),
                "nil" => Tok::Lit(Value::Null),
                _ => Tok::Ident(word.to_string()),
            };
            (tok, len)
        }
        c => return err(format!("template: unexpected {c:?} in action")),
    })
}

/// Parses nodes up to an `else` or `end` (returned) or the end of the source (`None`).
fn parse_list(pieces: &[Piece], at: &mut usize) -> Result<(Vec<Node>, Option<String>), Error> {
    let mut nodes = Vec::new();
    while let Some(piece) = pieces.get(*at) {
        *at += 1;
        let toks = match piece {
            Piece::Text(t) => {
                if !t.is_empty() {
                    nodes.push(Node::Text(t.clone()));
                }
                continue;
            }
            Piece::Action(toks) => toks,
        };
        match toks.first() {
            Some(Tok::Ident(w)) if w == "end" => return Ok((nodes, Some("end".into()))),
            Some(Tok::Ident(w)) if w == "else" => {
                // `else if ...` is kept whole for the `if` being parsed.
                return Ok((nodes, Some(words(toks))));
            }
            Some(Tok::Ident(w)) if w == "if" => nodes.push(parse_if(&toks[1..], pieces, at)?),
            Some(Tok::Ident(w)) if w == "range" || w == "with" => {
                let pipe = parse_pipeline(&toks[1..])?;
                let (body, end) = parse_list(pieces, at)?;
                let otherwise = match end.as_deref() {
                    Some("end") => Vec::new(),
                    Some("else") => expect_end(pieces, at)?,
                    _ => return err(format!("template: unexpected end of {w}")),
                };
                nodes.push(if w == "range" {
                    Node::Range { pipe, body, otherwise }
                } else {
                    Node::With { pipe, body, otherwise }
                });
            }
            Some(Tok::Ident(w)) if ["define", "template", "block"].contains(&w.as_str()) => {
                return err(format!("template: {{{{{w}}}}} is not supported"));
            }
            None => return err("template: missing value for command"),
            _ => nodes.push(Node::Action(parse_pipeline(toks)?)),
        }
    }
    Ok((nodes, None))
}

/// A marker for `else` actions: "else", or "else if" followed by the rest, re-lexed later.
fn words(toks: &[Tok]) -> String {
    match toks.get(1) {
        Some(Tok::Ident(w)) if w == "if" => "else if".into(),
        Some(_) => "else ?".into(),
        None => "else".into(),
    }
}

fn expect_end(pieces: &[Piece], at: &mut usize) -> Result<Vec<Node>, Error> {
    let (list, end) = parse_list(pieces, at)?;
    match end.as_deref() {
        Some("end") => Ok(list),
        _ => err("template: expected {{end}}"),
    }
}

fn parse_if(cond: &[Tok], pieces: &[Piece], at: &mut usize) -> Result<Node, Error> {
    let mut branches = vec![(parse_pipeline(cond)?, Vec::new())];
    loop {
        let (body, end) = parse_list(pieces, at)?;
        if let Some(last) = branches.last_mut() {
            last.1 = body;
        }
        match end.as_deref() {
            Some("end") => return Ok(Node::If { branches, otherwise: Vec::new() }),
            Some("else") => {
                return Ok(Node::If { branches, otherwise: expect_end(pieces, at)? });
            }
            Some("else if") => {
                // The tokens after `else if` of the action just read.
                let Some(Piece::Action(toks)) = pieces.get(*at - 1) else {
                    return err("template: bad else if");
                };
                branches.push((parse_pipeline(&toks[2..])?, Vec::new()));
            }
            _ => return err("template: unexpected end of if"),
        }
    }
}

fn parse_pipeline(toks: &[Tok]) -> Result<Pipeline, Error> {
    let mut decl = Vec::new();
    let mut toks = toks;
    // `$x :=`, `$x =` or `$i, $v :=`.
    let declared = toks.iter().position(|t| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(d) = declared {
        for t in &toks[..d] {
            match t {
                Tok::Var(name, names) if names.is_empty() => decl.push(name.clone()),
                Tok::Comma => {}
                _ => return err("template: bad variable declaration"),
            }
        }
        toks = &toks[d + 1..];
    }
    let mut cmds = Vec::new();
    for part in split_top(toks, &Tok::Pipe)? {
        if part.is_empty() {
            return err("template: missing command in pipeline");
        }
        cmds.push(parse_args(part)?);
    }
    if cmds.is_empty() {
        return err("template: missing value for command");
    }
    Ok(Pipeline { decl, cmds })
}

/// Splits tokens at `sep` outside parentheses.
fn split_top<'t>(toks: &'t [Tok], sep: &Tok) -> Result<Vec<&'t [Tok]>, Error> {
    let (mut depth, mut start, mut parts) = (0usize, 0, Vec::new());
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Open => depth += 1,
            Tok::Close(_) => {
                depth =
                    depth.checked_sub(1).ok_or_else(|| Error("template: unexpected )".into()))?
            }
            t if t == sep && depth == 0 => {
                parts.push(&toks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return err("template: unclosed left paren");
    }
    parts.push(&toks[start..]);
    Ok(parts)
}

fn parse_args(toks: &[Tok]) -> Result<Vec<Arg>, Error> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let arg = match &toks[i] {
            Tok::Field(names) => Arg::Field(names.clone()),
            Tok::Var(name, names) => Arg::Var(name.clone(), names.clone()),
            Tok::Ident(name) => Arg::Func(name.clone()),
            Tok::Lit(v) => Arg::Lit(v.clone()),
            Tok::Open => {
                let mut depth = 0;
                let mut j = i;
                let close = loop {
                    match &toks[j] {
                        Tok::Open => depth += 1,
                        Tok::Close(names) => {
                            depth -= 1;
                            if depth == 0 {
                                break names;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                    if j == toks.len() {
                        return err("template: unclosed left paren");
                    }
                };
                let inner = parse_pipeline(&toks[i + 1..j])?;
                i = j;
                Arg::Sub(Box::new(inner), close.clone())
            }
            t => return err(format!("template: unexpected {t:?} in command")),
        };
        args.push(arg);
        i += 1;
    }
    Ok(args)
}

struct State {
    vars: Vec<(String, Value)>,
}

impl State {
    fn walk(&mut self, nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), Error> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        out.push_str(&print(&v));
                    }
                }
                Node::If { branches, otherwise } => {
                    let mark = self.vars.len();
                    let mut taken = false;
                    for (cond, body) in branches {
                        if truth(&self.pipeline(cond, dot)?) {
                            self.walk(body, dot, out)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        self.walk(otherwise, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::With { pipe, body, otherwise } => {
                    let mark = self.vars.len();
                    let v = self.pipeline(pipe, dot)?;
                    if truth(&v) {
                        self.walk(body, &v, out)?;
                    } else {
                        self.walk(otherwise, dot, out)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range { pipe, body, otherwise } => {
                    self.range(pipe, body, otherwise, dot, out)?
                }
            }
        }
        Ok(())
    }

    fn range(
        &mut self,
        pipe: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
        out: &mut String,
    ) -> Result<(), Error> {
        let mark = self.vars.len();
        let plain = Pipeline { decl: Vec::new(), cmds: pipe.cmds.clone() };
        let items: Vec<(Value, Value)> = match self.pipeline(&plain, dot)? {
            Value::Array(a) => {
                a.into_iter().enumerate().map(|(i, v)| (Value::from(i), v)).collect()
            }
            Value::Object(m) => {
                let mut pairs: Vec<(String, Value)> = m.into_iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                pairs.into_iter().map(|(k, v)| (Value::String(k), v)).collect()
            }
            Value::Null => Vec::new(),
            v => return err(format!("template: range can't iterate over {}", print(&v))),
        };
        if items.is_empty() {
            self.walk(otherwise, dot, out)?;
        }
        for (key, value) in items {
            match pipe.decl.as_slice() {
                [v] => self.vars.push((v.clone(), value.clone())),
                [k, v] => {
                    self.vars.push((k.clone(), key));
                    self.vars.push((v.clone(), value.clone()));
                }
                _ => {}
            }
            self.walk(body, &value, out)?;
            self.vars.truncate(mark);
        }
        Ok(())
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Value) -> Result<Value, Error> {
        let mut piped: Option<Value> = None;
        for cmd in &p.cmds {
            piped = Some(self.command(cmd, dot, piped)?);
        }
        let v = piped.unwrap_or(Value::Null);
        for name in &p.decl {
            // `$x = v` changes the innermost `$x`; `$x := v` declares one.
            self.vars.push((name.clone(), v.clone()));
        }
        Ok(v)
    }

    fn command(&mut self, cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, Error> {
        if let Some(Arg::Func(name)) = cmd.first() {
            let mut args = Vec::new();
            for a in &cmd[1..] {
                args.push(self.arg(a, dot)?);
            }
            args.extend(piped);
            return call(name, &args);
        }
        if cmd.len() > 1 || piped.is_some() {
            return err("template: can't give argument to non-function");
        }
        match cmd.first() {
            Some(a) => self.arg(a, dot),
            None => err("template: missing value for command"),
        }
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, Error> {
        Ok(match a {
            Arg::Field(names) => fields(dot, names),
            Arg::Var(name, names) => match self.vars.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => fields(v, names),
                None => return err(format!("template: undefined variable: {name}")),
            },
            Arg::Lit(v) => v.clone(),
            Arg::Func(name) => call(name, &[])?,
            Arg::Sub(p, names) => {
                let v = self.pipeline(p, dot)?;
                fields(&v, names)
            }
        })
    }
}

/// `.A.B` of a value; a missing key is Go's `<no value>` (kept as a marker string).
fn fields(v: &Value, names: &[String]) -> Value {
    let mut v = v.clone();
    for n in names {
        v = match v.get(n) {
            Some(x) => x.clone(),
            None => return Value::String(NO_VALUE.into()),
        };
    }
    v
}

const NO_VALUE: &str = "<no value>";

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value printed as Go's `fmt` prints it (`%v`): lists `[a b]`, maps `map[k:v]` with
/// sorted keys, nil `<nil>`.
pub fn print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(print).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> =
                keys.iter().map(|k| format!("{k}:{}", print(&o[*k]))).collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// Go's `json.Marshal`, which escapes `<`, `>` and `&` in strings.
fn to_json(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// The widest `pad` or `printf` width taken (wider ones are cut to it), so that a template
/// cannot ask for more memory than a line needs.
const MAX_WIDTH: i64 = 10_000;

fn want_args(name: &str, args: &[Value], n: usize) -> Result<(), Error> {
    if args.len() == n {
        Ok(())
    } else {
        err(format!("template: wrong number of args for {name}: want {n} got {}", args.len()))
    }
}

fn as_int(name: &str, v: &Value) -> Result<i64, Error> {
    v.as_i64().ok_or_else(|| Error(format!("template: {name}: {} is not an integer", print(v))))
}

fn call(name: &str, args: &[Value]) -> Result<Value, Error> {
    let s = |i: usize| args.get(i).map(print).unwrap_or_default();
    Ok(match name {
        "json" => {
            want_args(name, args, 1)?;
            Value::String(to_json(&args[0]))
        }
        "join" => {
            want_args(name, args, 2)?;
            let items: Vec<String> = match &args[0] {
                Value::Array(a) => a.iter().map(print).collect(),
                Value::Null => Vec::new(),
                v => vec![print(v)],
            };
            Value::String(items.join(&s(1)))
        }
        "split" => {
            want_args(name, args, 2)?;
            Value::Array(s(0).split(&s(1)).map(|p| Value::String(p.into())).collect())
        }
        "lower" => Value::String(s(0).to_lowercase()),
        "upper" => Value::String(s(0).to_uppercase()),
        "title" => Value::String(title(&s(0))),
        "truncate" => {
            want_args(name, args, 2)?;
            let n = as_int(name, &args[1])?.max(0) as usize;
            Value::String(s(0).chars().take(n).collect())
        }
        "pad" => {
            want_args(name, args, 3)?;
            let l = as_int(name, &args[1])?.clamp(0, MAX_WIDTH);
            let r = as_int(name, &args[2])?.clamp(0, MAX_WIDTH);
            Value::String(format!("{}{}{}", " ".repeat(l as usize), s(0), " ".repeat(r as usize)))
        }
        "len" => {
            want_args(name, args, 1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(o) => o.len(),
                Value::String(s) => s.len(),
                v => return err(format!("template: len of {}", print(v))),
            })
        }
        "index" => index(args)?,
        "print" => Value::String(go_print(args)),
        "println" => Value::String(args.iter().map(print).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => Value::String(printf(&s(0), args.get(1..).unwrap_or(&[]))?),
        "not" => {
            want_args(name, args, 1)?;
            Value::Bool(!truth(&args[0]))
        }
        "and" => args.iter().find(|v| !truth(v)).or(args.last()).cloned().unwrap_or(Value::Null),
        "or" => args.iter().find(|v| truth(v)).or(args.last()).cloned().unwrap_or(Value::Null),
        "eq" => {
            let Some((first, rest)) = args.split_first() else {
                return err("template: missing argument for comparison");
            };
            Value::Bool(rest.iter().any(|v| same(first, v)))
        }
        "ne" => {
            want_args(name, args, 2)?;
            Value::Bool(!same(&args[0], &args[1]))
        }
        "lt" | "le" | "gt" | "ge" => {
            want_args(name, args, 2)?;
            let ord = order(&args[0], &args[1])?;
            Value::Bool(match name {
                "lt" => ord.is_lt(),
                "le" => ord.is_le(),
                "gt" => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        _ => return err(format!("template: function {name:?} not defined")),
    })
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, Error> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            Ok(x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(std::cmp::Ordering::Equal))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => err("template: incompatible types for comparison"),
    }
}

fn index(args: &[Value]) -> Result<Value, Error> {
    let Some((first, keys)) = args.split_first() else {
        return err("template: wrong number of args for index");
    };
    let mut v = first.clone();
    for k in keys {
        v = match (&v, k) {
            (Value::Array(a), k) => {
                let i = as_int("index", k)?;
                match usize::try_from(i).ok().and_then(|i| a.get(i)) {
                    Some(x) => x.clone(),
                    None => return err(format!("template: index out of range: {i}")),
                }
            }
            (Value::Object(o), Value::String(k)) => o.get(k).cloned().unwrap_or(Value::Null),
            (Value::Null, _) => return err("template: index of untyped nil"),
            _ => return err(format!("template: can't index item of type {}", print(&v))),
        };
    }
    Ok(v)
}

/// Go's `print`: spaces between operands when neither side is a string.
fn go_print(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, v) in args.iter().enumerate() {
        if i > 0 && !v.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&print(v));
    }
    out
}

fn title(s: &str) -> String {
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

/// Go's `printf` for the verbs scripts use: `%v %s %d %q %t %%`, with `-` and a width.
fn printf(fmt: &str, args: &[Value]) -> Result<String, Error> {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let left = chars.next_if_eq(&'-').is_some();
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            width = (width * 10 + d as usize).min(MAX_WIDTH as usize);
            chars.next();
        }
        let verb = chars.next().unwrap_or('%');
        let text = match verb {
            '%' => Some("%".to_string()),
            'q' => next.next().map(|v| serde_json::to_string(&print(v)).unwrap_or_default()),
            'v' | 's' | 'd' | 't' => next.next().map(print),
            other => return err(format!("template: printf verb %{other} is not supported")),
        }
        .unwrap_or_else(|| format!("%!{verb}(MISSING)"));
        let pad = width.saturating_sub(text.chars().count());
        if left {
            let _ = write!(out, "{text}{}", " ".repeat(pad));
        } else {
            let _ = write!(out, "{}{text}", " ".repeat(pad));
        }
    }
    Ok(out)
}

/// Prints the rows of a listing command (`images`, `history`, `ps`) as docker's `--format`
/// does: none or `table` the default columns, `json` one JSON object per line, `table
/// TEMPLATE` aligned columns (`default` is the template of the default table) (a tab in the template separates them) under a header made
/// from `titles` (every field of the rows, with its column title, so that a header shows
/// also when there are no rows), any other template once per row.
pub fn listing(
    format: Option<&str>,
    rows: &[Value],
    titles: &[(&str, &str)],
    default: &str,
) -> Result<String, Error> {
    let format = match format.map(str::trim) {
        None | Some("table") => format!("table {default}"),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let unescape = |t: &str| t.replace("\\t", "\t").replace("\\n", "\n");
    let Some(columns) = format.strip_prefix("table") else {
        let template = Template::parse(&unescape(&format))?;
        let mut out = String::new();
        for row in rows {
            out.push_str(&template.execute(row)?);
            out.push('\n');
        }
        return Ok(out);
    };
    let template = Template::parse(&unescape(columns.trim_start()))?;
    // The header: the template run over each field's title (`titles`, else its name in
    // capitals, as docker's headers are).
    let mut names = serde_json::Map::new();
    for key in rows.first().and_then(Value::as_object).into_iter().flat_map(|o| o.keys()) {
        names.insert(key.clone(), Value::String(key.to_uppercase()));
    }
    for (key, title) in titles {
        names.insert(key.to_string(), Value::String(title.to_string()));
    }
    let header = template.execute(&Value::Object(names))?;
    let header: Vec<&str> = header.split('\t').collect();
    let mut cells = Vec::new();
    for row in rows {
        cells.push(template.execute(row)?.split('\t').map(String::from).collect());
    }
    Ok(crate::human::table(&header, &cells))
}

#[cfg(test)]
mod tests {
    use super::Template;
    use serde_json::json;

    fn render(t: &str, v: &serde_json::Value) -> Result<String, super::Error> {
        Template::parse(t)?.execute(v)
    }

    fn r(t: &str, v: serde_json::Value) -> String {
        render(t, &v).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn fields_lists_and_maps_print_as_go_prints_them() {
        let v = json!({"Id": "sha256:ab", "Config": {"Env": ["A=1", "B=2"], "Labels": {"z": "1", "a": "2"}}, "Size": 4261542});
        assert_eq!(r("{{.Id}}", v.clone()), "sha256:ab");
        assert_eq!(r("{{ .Config.Env }}", v.clone()), "[A=1 B=2]");
        assert_eq!(r("{{.Config.Labels}}", v.clone()), "map[a:2 z:1]");
        assert_eq!(r("{{.Size}}", v.clone()), "4261542");
        assert_eq!(r("{{.Nope}}", v.clone()), "<no value>");
        assert_eq!(r("{{json .Config.Env}}", v.clone()), r#"["A=1","B=2"]"#);
        assert_eq!(r("{{index .Config.Env 1}}", v.clone()), "B=2");
        assert_eq!(r("{{join .Config.Env \",\"}}", v.clone()), "A=1,B=2");
        assert_eq!(r("{{(index .Config.Labels \"a\")}}", v), "2");
    }

    #[test]
    fn control_structures_and_variables() {
        let v = json!({"L": {"b": "2", "a": "1"}, "E": [], "N": ["x", "y"]});
        assert_eq!(r("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", v.clone()), "a=1;b=2;");
        assert_eq!(r("{{range .E}}x{{else}}empty{{end}}", v.clone()), "empty");
        assert_eq!(r("{{range .N}}[{{.}}]{{else}}empty{{end}}", v.clone()), "[x][y]");
        assert_eq!(r("{{range $i, $e := .N}}{{$i}}{{$e}}{{end}}", v.clone()), "0x1y");
        assert_eq!(r("{{if .E}}a{{else if .N}}b{{else}}c{{end}}", v.clone()), "b");
        assert_eq!(r("{{with .L}}{{.a}}{{end}}", v.clone()), "1");
        assert_eq!(r("{{$x := .N}}{{len $x}} {{$.L.a}}", v.clone()), "2 1");
        assert_eq!(r("a  {{- \"b\" -}}  c", v.clone()), "abc");
        assert_eq!(r("{{if eq (len .N) 2}}two{{end}}", v.clone()), "two");
        assert_eq!(r("{{.L.a | printf \"%-3s|\"}}", v.clone()), "1  |");
        assert_eq!(r("{{upper \"ab\"}} {{lower \"AB\"}} {{title \"a b\"}}", v), "AB ab A B");
    }

    #[test]
    fn bad_templates_are_errors_not_panics() {
        // Widths are capped rather than allocated.
        let wide = "{{pad \"x\" 99999999999999 0}}|{{printf \"%99999999999999999999s\" \"y\"}}";
        assert_eq!(render(wide, &json!({})).map(|s| s.len()), Ok(10_001 + 1 + 10_000));
        let deep_blocks = "{{if 1}}".repeat(10_000);
        let deep_parens = format!("{{{{{}1{}}}}}", "(".repeat(10_000), ")".repeat(10_000));
        for t in [
            deep_blocks.as_str(),
            deep_parens.as_str(),
            "{{",
            "{{.A",
            "{{if .A}}",
            "{{end}}",
            "{{nosuch .A}}",
            "{{(.A}}",
            "{{\"x}}",
            "{{range 1}}{{end}}",
            "{{index .A 5}}",
            "{{define \"x\"}}{{end}}",
        ] {
            assert!(render(t, &json!({"A": [1]})).is_err(), "{t} should fail");
        }
    }
}
