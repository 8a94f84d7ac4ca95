//! The house rules of the source tree (README, "Layout"), checked on every test run so that
//! the layout does not drift back: which crate may depend on which, no import circles between
//! modules, the host's top level, the length of functions, where the ABI and the simulator may
//! be used, and no citations of documents that are not in the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use mkrefs_e2e::workspace_root;
use serde_json::Value;
use syn::visit_mut::VisitMut;

/// Functions must stay shorter than this many lines (signature to closing brace).
const MAX_FUNCTION_LINES: usize = 150;
/// Entries allowed at the top of the binary's source folder.
const MAX_HOST_TOP_LEVEL: usize = 16;

// ---------------------------------------------------------------------------------------------
// Crates and their dependencies (cargo metadata).

struct Workspace {
    /// Package name -> its targets' root files.
    targets: BTreeMap<String, Vec<PathBuf>>,
    /// Package name -> workspace packages it depends on as a normal (not dev or build) dependency.
    normal: BTreeMap<String, BTreeSet<String>>,
}

/// The platform this test runs on, so that cargo metadata needs no other platform's crates.
fn host_triple() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host")
}

fn workspace() -> Workspace {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host_triple()])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut names = BTreeMap::new();
    let mut targets = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let id = p["id"].as_str().unwrap();
        if !members.contains(id) {
            continue;
        }
        let name = p["name"].as_str().unwrap().to_string();
        names.insert(id.to_string(), name.clone());
        let roots = p["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| PathBuf::from(t["src_path"].as_str().unwrap()))
            .collect();
        targets.insert(name, roots);
    }
    let mut normal: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let Some(name) = names.get(node["id"].as_str().unwrap()) else {
            continue;
        };
        let deps = node["deps"].as_array().unwrap().iter().filter(|d| {
            d["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null())
        });
        let set = deps
            .filter_map(|d| names.get(d["pkg"].as_str().unwrap()).cloned())
            .collect();
        normal.insert(name.clone(), set);
    }
    Workspace { targets, normal }
}

impl Workspace {
    /// Every workspace package `name` depends on, directly or through others (normal deps).
    fn closure(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            for d in self.normal.get(&n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }
}

const GENERATORS: [&str; 4] = [
    "mkref-readnoise",
    "mkref-superbias",
    "mkref-dark",
    "mkref-bpm",
];

#[test]
fn crates_depend_only_downwards() {
    let ws = workspace();
    let mut problems = Vec::new();
    let mut forbid = |pkg: &str, banned: &[&str], why: &str| {
        let closure = ws.closure(pkg);
        for b in banned {
            if closure.contains(*b) {
                problems.push(format!("{pkg} depends on {b} ({why})"));
            }
        }
    };
    let workspace_crates: Vec<&str> = ws.targets.keys().map(String::as_str).collect();
    forbid(
        "mkrefs-plugin-api",
        &workspace_crates,
        "the ABI depends on no workspace crate",
    );
    forbid(
        "mkrefs-support",
        &[
            "mkrefs-sim",
            "mkrefs-detector1",
            "mkrefs",
            GENERATORS[0],
            GENERATORS[1],
            GENERATORS[2],
            GENERATORS[3],
        ],
        "support is below everything but the ABI",
    );
    for g in GENERATORS {
        let others: Vec<&str> = GENERATORS.iter().copied().filter(|o| *o != g).collect();
        forbid(g, &others, "generators never see each other");
        forbid(
            g,
            &["mkrefs", "mkrefs-detector1", "mkrefs-sim"],
            "generators link only the ABI and support (the simulator is a dev-dependency)",
        );
    }
    forbid(
        "mkrefs-detector1",
        &["mkrefs", "mkrefs-sim"],
        "the engine links no simulator",
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Modules of a crate, read with syn from each target's root through its `mod` declarations.

/// One module: its path from the crate root and the items written in it (not in its children).
struct Module {
    file: PathBuf,
    items: Vec<syn::Item>,
}

type ModPath = Vec<String>;

fn parse_file(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Collects `path`'s module and its children. `dir` is where child module files live.
fn collect_modules(
    file: &Path,
    dir: &Path,
    path: ModPath,
    items: Vec<syn::Item>,
    out: &mut BTreeMap<ModPath, Module>,
) {
    for item in &items {
        let syn::Item::Mod(m) = item else { continue };
        let name = m.ident.to_string();
        let mut child = path.clone();
        child.push(name.clone());
        match &m.content {
            Some((_, inner)) => {
                collect_modules(file, &dir.join(&name), child, inner.clone(), out);
            }
            None => {
                let flat = dir.join(format!("{name}.rs"));
                let (child_file, child_dir) = if flat.is_file() {
                    (flat, dir.join(&name))
                } else {
                    let nested = dir.join(&name).join("mod.rs");
                    (nested, dir.join(&name))
                };
                let parsed = parse_file(&child_file);
                collect_modules(&child_file, &child_dir, child, parsed.items, out);
            }
        }
    }
    out.insert(
        path,
        Module {
            file: file.to_path_buf(),
            items,
        },
    );
}

fn crate_modules(root: &Path) -> BTreeMap<ModPath, Module> {
    let mut out = BTreeMap::new();
    let dir = root.parent().unwrap();
    collect_modules(root, dir, Vec::new(), parse_file(root).items, &mut out);
    out
}

/// The paths a module's own items refer to (use trees and paths in code), as segment lists.
#[derive(Default)]
struct Refs {
    paths: Vec<Vec<String>>,
}

impl VisitMut for Refs {
    fn visit_item_mod_mut(&mut self, _: &mut syn::ItemMod) {
        // A child module's items are its own.
    }

    fn visit_item_use_mut(&mut self, u: &mut syn::ItemUse) {
        expand_use(&u.tree, Vec::new(), &mut self.paths);
    }

    fn visit_visibility_mut(&mut self, _: &mut syn::Visibility) {
        // `pub(crate)`, `pub(super)` name no item.
    }

    fn visit_path_mut(&mut self, p: &mut syn::Path) {
        self.paths
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit_mut::visit_path_mut(self, p);
    }
}

fn expand_use(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let with = |name: String| {
        let mut p = prefix.clone();
        p.push(name);
        p
    };
    match tree {
        syn::UseTree::Path(p) => expand_use(&p.tree, with(p.ident.to_string()), out),
        syn::UseTree::Name(n) => out.push(with(n.ident.to_string())),
        syn::UseTree::Rename(r) => out.push(with(r.ident.to_string())),
        syn::UseTree::Glob(_) => out.push(prefix),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                expand_use(t, prefix.clone(), out);
            }
        }
    }
}

/// The module a path names (its longest module prefix), if it is a path inside the crate.
fn resolve(
    path: &[String],
    current: &ModPath,
    modules: &BTreeMap<ModPath, Module>,
) -> Option<ModPath> {
    let (mut base, rest): (ModPath, &[String]) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("self") | Some("super") => {
            let mut base = current.clone();
            let mut i = 0;
            while i < path.len() && (path[i] == "self" || path[i] == "super") {
                if path[i] == "super" {
                    base.pop();
                }
                i += 1;
            }
            (base, &path[i..])
        }
        Some(first) => {
            let mut child = current.clone();
            child.push(first.to_string());
            if !modules.contains_key(&child) {
                return None;
            }
            (current.clone(), path)
        }
        None => return None,
    };
    for seg in rest {
        base.push(seg.clone());
        if !modules.contains_key(&base) {
            base.pop();
            break;
        }
    }
    Some(base)
}

struct Graph {
    modules: BTreeMap<ModPath, Module>,
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
    /// The external crates each module names (first path segments that are not modules).
    externs: BTreeMap<ModPath, BTreeSet<String>>,
}

fn graph(root: &Path) -> Graph {
    let modules = crate_modules(root);
    let mut edges = BTreeMap::new();
    let mut externs = BTreeMap::new();
    for (path, m) in &modules {
        let mut refs = Refs::default();
        for item in &m.items {
            refs.visit_item_mut(&mut item.clone());
        }
        let mut to = BTreeSet::new();
        let mut ext = BTreeSet::new();
        for r in &refs.paths {
            match resolve(r, path, &modules) {
                Some(t) if &t != path => {
                    to.insert(t);
                }
                Some(_) => {}
                None => {
                    if let Some(first) = r.first() {
                        ext.insert(first.clone());
                    }
                }
            }
        }
        edges.insert(path.clone(), to);
        externs.insert(path.clone(), ext);
    }
    Graph {
        modules,
        edges,
        externs,
    }
}

fn name(path: &ModPath) -> String {
    std::iter::once("crate")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<ModPath, usize>,
        low: BTreeMap<ModPath, usize>,
        stack: Vec<ModPath>,
        found: Vec<Vec<ModPath>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: &ModPath) {
            let i = self.index.len();
            self.index.insert(v.clone(), i);
            self.low.insert(v.clone(), i);
            self.stack.push(v.clone());
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    let done = &w == v;
                    comp.push(w);
                    if done {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.found.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.found
}

/// The root files of every target of every workspace crate (the template is not a crate
/// until it is rendered, so it is not among them).
fn all_targets(ws: &Workspace) -> Vec<(String, PathBuf)> {
    ws.targets
        .iter()
        .flat_map(|(pkg, roots)| roots.iter().map(move |r| (pkg.clone(), r.clone())))
        .collect()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let ws = workspace();
    let mut problems = Vec::new();
    for (pkg, root) in all_targets(&ws) {
        let g = graph(&root);
        for comp in circles(&g.edges) {
            let members: BTreeSet<&ModPath> = comp.iter().collect();
            let mut lines = vec![format!(
                "{pkg} ({}): circle among {}",
                root.display(),
                comp.iter().map(name).collect::<Vec<_>>().join(", ")
            )];
            for a in &comp {
                for b in &g.edges[a] {
                    if members.contains(b) {
                        lines.push(format!("    {} -> {}", name(a), name(b)));
                    }
                }
            }
            problems.push(lines.join("\n"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The host's binary crate.
fn host_graph() -> Graph {
    graph(&workspace_root().join("host/mkrefs/src/lib.rs"))
}

/// Every module `from` reaches by following imports.
fn reach(g: &Graph, from: &ModPath) -> BTreeSet<ModPath> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.clone()];
    while let Some(m) = todo.pop() {
        for t in g.edges.get(&m).into_iter().flatten() {
            if seen.insert(t.clone()) {
                todo.push(t.clone());
            }
        }
    }
    seen
}

#[test]
fn the_run_stages_never_reach_the_command_line() {
    let g = host_graph();
    let stages = ["config", "inputs", "prep", "plan", "exec", "child"];
    let ui = |m: &ModPath| m.first().is_some_and(|f| f == "cli" || f == "commands");
    let mut problems = Vec::new();
    for m in g.modules.keys() {
        if !m.first().is_some_and(|f| stages.contains(&f.as_str())) {
            continue;
        }
        for r in reach(&g, m).iter().filter(|r| ui(r)) {
            problems.push(format!("{} reaches {}", name(m), name(r)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_abi_and_the_simulator_stay_at_their_edges() {
    let g = host_graph();
    let allowed: [(&str, &[&str]); 3] = [
        ("mkrefs_plugin_api", &["registry", "child::ffi"]),
        ("abi_stable", &["child::ffi"]),
        ("mkrefs_sim", &["commands::demo", "commands::simulate"]),
    ];
    let mut problems = Vec::new();
    for (path, ext) in &g.externs {
        let here = path.join("::");
        for (krate, places) in allowed {
            if ext.contains(krate) && !places.iter().any(|p| here == *p) {
                problems.push(format!(
                    "{} ({}) uses {krate}, which belongs in {}",
                    name(path),
                    g.modules[path].file.display(),
                    places.join(" and ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_host_source_folder_stays_small_at_the_top() {
    let dir = workspace_root().join("host/mkrefs/src");
    let entries: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.len() <= MAX_HOST_TOP_LEVEL,
        "{} has {} entries (at most {MAX_HOST_TOP_LEVEL}): {entries:?}",
        dir.display(),
        entries.len()
    );
}

// ---------------------------------------------------------------------------------------------
// Function length, over every Rust file of the workspace's targets and tests.

/// The functions of `text` as `(first line, name, lines)`. The sources are rustfmt-formatted
/// (the test run checks that), so a function's body ends at the first line that is its own
/// indentation and `}`.
fn function_lengths(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut words = trimmed.split_whitespace().peekable();
        // Qualifiers before `fn`: pub, pub(crate), const, async, unsafe, extern "C".
        while let Some(w) = words.peek() {
            if w.starts_with("pub") || ["const", "async", "unsafe", "extern", "\"C\""].contains(w) {
                words.next();
            } else {
                break;
            }
        }
        if words.next() != Some("fn") {
            continue;
        }
        let name: String = words
            .next()
            .unwrap_or("")
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A declaration without a body (trait methods) ends in `;` before any `{`.
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j].trim_end() == close) {
            out.push((i + 1, name, end - i + 1));
        }
    }
    out
}

#[test]
fn no_function_is_too_long_to_read() {
    let ws = workspace();
    let mut files = BTreeSet::new();
    for (_, root) in all_targets(&ws) {
        for m in crate_modules(&root).into_values() {
            files.insert(m.file);
        }
    }
    let mut long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, name, lines) in function_lengths(&text) {
            if lines >= MAX_FUNCTION_LINES {
                long.push(format!("{}:{line} {name}: {lines} lines", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions of {MAX_FUNCTION_LINES} lines or more (split them into named steps):\n{}",
        long.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Documentation lives in the repository.

/// Text files under version control (what a fresh clone has).
fn tracked_text_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(workspace_root())
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files failed");
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| workspace_root().join(String::from_utf8_lossy(p).as_ref()))
        .filter(|p| std::fs::read_to_string(p).is_ok())
        .collect()
}

#[test]
fn no_citation_of_documents_outside_the_repository() {
    // The design notes and behaviour specs the project was started from are not part of the
    // repository; what a reader needs of them is in README.md and the UPSTREAM.md files.
    let outside = ["framework", "algos", "bpm", "ecosystem", "DESIGN"].map(|d| format!("{d}.md"));
    let section_sign = '\u{a7}';
    let mut problems = Vec::new();
    for file in tracked_text_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let cites =
                outside.iter().any(|d| line.contains(d.as_str())) || line.contains(section_sign);
            if cites {
                problems.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn function_lengths_run_from_the_signature_to_the_closing_brace() {
    let text = "fn a() {\n    x();\n}\n\nimpl X {\n    pub(crate) fn b(\n        y: u8,\n    ) -> u8 \
                {\n        y\n    }\n    fn c();\n}\n";
    assert_eq!(
        function_lengths(text),
        [(1, "a".to_string(), 3), (6, "b".to_string(), 5)]
    );
}
