//! The crate's modules form layers and imports only run down (docs/ARCHITECTURE.md, "Layers").
//!
//! Reads every file under `src/`, takes the `crate::` and `super::` paths its code names (unit
//! tests and comments left out), and fails on an import from a higher layer, on a cycle between
//! top-level modules, or on a cycle between files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the top layer down. A module may name its own layer's modules (if no
/// cycle forms) and any layer below; never one above.
const LAYERS: &[&[&str]] = &[
    &["main", "bin", "cli"],
    &["app"],
    &["http", "load"],
    &["session", "offline", "client"],
    &["registry"],
    &["config"],
    &["engine"],
    &["pipeline", "speaker", "audio", "models", "store", "protocol", "eval"],
    &["telemetry", "logging", "process", "onnx"],
    &["domain"],
];

fn layer_of(module: &str) -> usize {
    LAYERS.iter().position(|layer| layer.contains(&module)).unwrap_or_else(|| {
        panic!("top-level module `{module}` has no layer: add it to LAYERS in tests/layers.rs and docs/ARCHITECTURE.md")
    })
}

/// A source file and the module path it defines (`src/session/core.rs` -> `session::core`).
struct SourceFile {
    module: Vec<String>,
    code: String,
}

fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file has a name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The file's code without comments and without its `#[cfg(test)]` items (unit tests may reach
/// anywhere): each is removed up to its closing brace, or its `;` (`mod tests;`), and the code
/// after it is read on.
fn code_of(text: &str) -> String {
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut kept = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find(TEST_ONLY) {
        kept.push_str(&rest[..at]);
        rest = &rest[at + TEST_ONLY.len()..];
        rest = &rest[item_end(rest)..];
    }
    kept.push_str(rest);
    kept
}

const TEST_ONLY: &str = "#[cfg(test)]";

/// Where the item at the start of `code` ends: after a `;` that comes before any brace, else
/// after the brace that closes its first `{`.
fn item_end(code: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in code.char_indices() {
        match c {
            ';' if depth == 0 => return i + 1,
            '{' => depth += 1,
            '}' if depth <= 1 => return i + 1,
            '}' => depth -= 1,
            _ => {}
        }
    }
    code.len()
}

fn read_sources(dir: &Path, root: &Path, out: &mut Vec<SourceFile>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entries are readable").path();
        if path.is_dir() {
            read_sources(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !path.to_string_lossy().ends_with("_tests.rs") {
            let text = std::fs::read_to_string(&path).expect("source files are UTF-8");
            let module = module_path(path.strip_prefix(root).expect("under src/"));
            out.push(SourceFile { module, code: code_of(&text) });
        }
    }
}

/// The paths after `prefix` (e.g. `crate::`) in `code`, as segment lists; a `{...}` group
/// names each of its paths, so `crate::a::{b, c::d}` yields `a::b` and `a::c::d`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        use_tree(&code[at + prefix.len()..], &[], &mut out);
    }
    out
}

/// Reads the path (or use tree) at the start of `code`, below `base`, into `out`; returns how
/// many bytes it took. `self` in a group names the group's own path; `as` renames are skipped.
fn use_tree(code: &str, base: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut path = base.to_vec();
    let mut i = 0;
    loop {
        if code[i..].starts_with('{') {
            return i + 1 + group(&code[i + 1..], &path, out);
        }
        let ident_len = code[i..].find(|c: char| !is_ident(c)).unwrap_or(code.len() - i);
        match &code[i..i + ident_len] {
            "" | "self" => {}
            segment => path.push(segment.to_owned()),
        }
        i += ident_len;
        if !code[i..].starts_with("::") {
            break;
        }
        i += 2;
    }
    if !path.is_empty() {
        out.push(path);
    }
    i
}

/// The trees of a `{...}` group whose `{` was just read; returns the bytes up to its `}`.
fn group(code: &str, base: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut i = 0;
    while i < code.len() {
        i += code[i..].len() - code[i..].trim_start().len();
        if code[i..].starts_with('}') {
            return i + 1;
        }
        i += use_tree(&code[i..], base, out);
        // Past a rename (`b as c`) to the next tree or the group's end.
        i += code[i..].find([',', '}']).unwrap_or(code.len() - i);
        if code[i..].starts_with(',') {
            i += 1;
        }
    }
    i
}

/// The module a file names: the longest prefix of `path` that is a known module.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
}

/// For each file (by module path), the other files it names.
fn file_edges(files: &[SourceFile]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut edges = BTreeMap::new();
    for file in files {
        let mut named = BTreeSet::new();
        for path in paths_after(&file.code, "crate::") {
            named.extend(resolve(&path, &modules));
        }
        // `super::` from `a::b` (b.rs or b/mod.rs alike) means `a`; each further `super` one up.
        for path in paths_after(&file.code, "super::") {
            let ups = 1 + path.iter().take_while(|s| *s == "super").count();
            let parent = &file.module[..file.module.len().saturating_sub(ups)];
            let full: Vec<String> = parent.iter().cloned().chain(path.into_iter().skip(ups - 1)).collect();
            named.extend(resolve(&full, &modules));
        }
        // `self::c::..` and a bare `c::..` name the file's own child modules.
        let children = modules.iter().filter(|m| m.len() == file.module.len() + 1 && m.starts_with(&file.module));
        for child in children {
            let name = child.last().expect("a child has a name");
            let bare = paths_after(&file.code, &format!("{name}::")).into_iter().map(|_| Vec::<String>::new());
            let with_self = paths_after(&file.code, &format!("self::{name}::")).into_iter();
            if bare.chain(with_self).next().is_some() || file.code.contains(&format!("self::{name}")) {
                named.insert(child.clone());
            }
        }
        named.remove(&file.module);
        edges.insert(file.module.clone(), named);
    }
    edges
}

fn sources() -> Vec<SourceFile> {
    sources_under("src")
}

/// The source files under `dir` (relative to the crate).
fn sources_under(dir: &str) -> Vec<SourceFile> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files = Vec::new();
    read_sources(&root, &root, &mut files);
    files
}

/// A cycle in `graph`, if there is one, as the list of its nodes.
fn find_cycle<N: Ord + Clone>(graph: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    fn visit<N: Ord + Clone>(
        node: &N,
        graph: &BTreeMap<N, BTreeSet<N>>,
        stack: &mut Vec<N>,
        done: &mut BTreeSet<N>,
    ) -> Option<Vec<N>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            return Some(stack[at..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn top(module: &[String]) -> String {
    module.first().cloned().unwrap_or_else(|| "lib".into())
}

#[test]
fn imports_only_run_down_the_layers() {
    let edges = file_edges(&sources());
    let mut upward = Vec::new();
    for (from, named) in &edges {
        let Some(from_top) = from.first() else { continue };
        for to in named {
            let to_top = top(to);
            if to_top != *from_top && layer_of(&to_top) < layer_of(from_top) {
                upward.push(format!("{} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher layer:\n{}", upward.join("\n"));
}

#[test]
fn top_level_modules_form_no_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, named) in file_edges(&sources()) {
        let Some(from_top) = from.first().cloned() else { continue };
        let entry = graph.entry(from_top.clone()).or_default();
        entry.extend(named.iter().map(|t| top(t)).filter(|t| *t != from_top && t != "lib"));
    }
    assert_eq!(find_cycle(&graph), None, "top-level modules import each other in a loop");
}

#[test]
fn files_form_no_cycle() {
    let edges = file_edges(&sources());
    let cycle = find_cycle(&edges).map(|c| c.iter().map(|m| m.join("::")).collect::<Vec<_>>().join(" -> "));
    assert_eq!(cycle, None, "files import each other in a loop");
}

#[test]
fn the_checker_sees_imports_and_cycles() {
    let code = "use crate::a::{b, c};\nfn f() { super::d::e(); my_crate::x(); }\n// crate::commented";
    let named = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(paths_after(&code_of(code), "crate::"), vec![named(&["a", "b"]), named(&["a", "c"])]);
    assert_eq!(paths_after(code, "super::"), vec![vec!["d".to_owned(), "e".to_owned()]]);
    let graph: BTreeMap<u8, BTreeSet<u8>> =
        [(1, BTreeSet::from([2])), (2, BTreeSet::from([3])), (3, BTreeSet::from([1]))].into();
    assert_eq!(find_cycle(&graph), Some(vec![1, 2, 3]));
    let dag: BTreeMap<u8, BTreeSet<u8>> = [(1, BTreeSet::from([2, 3])), (2, BTreeSet::from([3]))].into();
    assert_eq!(find_cycle(&dag), None);
}

/// `anyhow` is for the binaries' top level; library code returns typed errors that keep causes.
#[test]
fn anyhow_stays_in_the_binaries() {
    let users: Vec<String> = sources()
        .into_iter()
        .filter(|f| !matches!(f.module.first().map(String::as_str), Some("main" | "bin" | "cli")))
        .filter(|f| f.code.contains("anyhow"))
        .map(|f| f.module.join("::"))
        .collect();
    assert!(users.is_empty(), "library modules using anyhow: {users:?}");
}

/// The blind spots the checker once had, each in a fixture tree (`tests/fixtures/layers`): code
/// after a `#[cfg(test)]` module, and a `super::{...}` group that closes a file-level cycle.
#[test]
fn the_checker_reads_past_unit_tests_and_into_groups() {
    let edges = file_edges(&sources_under("tests/fixtures/layers/src"));
    let module = |m: &str| m.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert!(edges[&module("a")].contains(&module("top")), "the import after the tests: {edges:?}");
    assert!(edges[&module("a::b")].contains(&module("a")), "the group naming the parent: {edges:?}");
    let cycle = find_cycle(&edges).map(|c| c.iter().map(|m| m.join("::")).collect::<Vec<_>>());
    assert_eq!(cycle, Some(vec!["a".to_owned(), "a::b".to_owned()]));
    // The unit tests' own imports are still left out.
    let code =
        code_of("fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::x;\n    fn g() { if true { } }\n}\nfn h() {}");
    assert!(!code.contains("crate::x") && code.contains("fn h()"), "{code}");
}

/// Logged errors print their whole chain (`logging::chain`), not only the outer message: the
/// cause is what an operator needs.
#[test]
fn errors_are_logged_with_their_causes() {
    let mut bare = Vec::new();
    for file in sources() {
        for (n, line) in file.code.lines().enumerate() {
            let logs_error = ["error = %", "%error,", "%error)", "%e,", "%e)"].iter().any(|p| line.contains(p));
            if logs_error && line.contains("tracing::") && !line.contains("chain") {
                bare.push(format!("{}:{}: {}", file.module.join("::"), n + 1, line.trim()));
            }
        }
    }
    assert!(bare.is_empty(), "errors logged without their causes (use logging::chain):\n{}", bare.join("\n"));
}
