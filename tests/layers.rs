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

/// The file's code without comments and without its unit tests (which may reach anywhere).
fn code_of(text: &str) -> String {
    let body = text.split("#[cfg(test)]").next().unwrap_or_default();
    body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
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

/// The paths after `prefix` (e.g. `crate::`) in `code`, as segment lists; a `{...}` group ends a
/// path, so `crate::a::{b, c}` yields `a`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let path: Vec<String> = rest[..end].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if !path.is_empty() {
            out.push(path);
        }
    }
    out
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
        // `super::` from `a::b` (b.rs or b/mod.rs alike) means `a`.
        let parent = &file.module[..file.module.len().saturating_sub(1)];
        for path in paths_after(&file.code, "super::") {
            let full: Vec<String> = parent.iter().cloned().chain(path).collect();
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
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
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
    assert_eq!(paths_after(&code_of(code), "crate::"), vec![vec!["a".to_owned()]]);
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
