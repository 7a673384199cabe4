//! Tidy checks run by `cargo test`: rules of the codebase that are easier to keep with a test
//! than with a reviewer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every Rust file starts with a `//!` line saying what it is for.
#[test]
fn every_rust_file_says_what_it_is_for() {
    let mut files = Vec::new();
    rust_files(&repo().join("crates"), &mut files);
    rust_files(&repo().join("tests"), &mut files);
    assert!(files.len() > 10, "found the sources: {files:?}");
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:?}"
    );
}

/// The SQLite and PostgreSQL migrations move in step: the same files, by number and name.
#[test]
fn migrations_match_across_backends() {
    let names = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(repo().join("migrations").join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"));
}

/// `.ci/run` runs the README's test command.
#[test]
fn ci_runs_the_readme_test_command() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let section = readme
        .split("## Run the tests")
        .nth(1)
        .expect("README has a Run the tests section");
    let command = section
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .nth(1)
        .expect("a code block with the command")
        .trim();
    assert!(
        ci.lines().any(|l| l.trim() == format!("exec {command}")),
        ".ci/run execs `{command}`"
    );
}

/// Whether a crate uses another to build and run (normal and build dependencies) or only in
/// its tests (dev-dependencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Use {
    Always,
    TestsOnly,
}

/// Edges between workspace crates, by short name: (from, how, to).
type Edges = BTreeSet<(String, Use, String)>;

/// A crate graph: every workspace crate and its edges to the others.
#[derive(Debug, Default)]
struct Graph {
    crates: BTreeSet<String>,
    edges: Edges,
}

fn show(edges: impl IntoIterator<Item = (String, Use, String)>) -> String {
    edges
        .into_iter()
        .map(|(from, how, to)| match how {
            Use::Always => format!("\n  {from} -> {to}"),
            Use::TestsOnly => format!("\n  {from} -> {to} (tests only)"),
        })
        .collect()
}

/// A package's short name: the key it has in `[workspace.dependencies]`.
fn short_name(package: &str) -> String {
    package
        .strip_prefix("slipway-")
        .unwrap_or(package)
        .to_owned()
}

/// The graph as cargo sees it. A dev-dependency on a crate that is also a normal dependency
/// adds nothing, so it is not an edge of its own.
fn workspace_graph() -> Graph {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = std::process::Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("run {cargo:?} metadata: {e}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().expect("a list of packages");
    let names: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("a package name"))
        .collect();
    let mut graph = Graph::default();
    for package in packages {
        let from = short_name(package["name"].as_str().unwrap());
        graph.crates.insert(from.clone());
        for dependency in package["dependencies"].as_array().expect("dependencies") {
            let name = dependency["name"].as_str().expect("a dependency name");
            if !names.contains(name) {
                continue;
            }
            let how = match dependency["kind"].as_str() {
                None | Some("build") => Use::Always,
                Some("dev") => Use::TestsOnly,
                Some(other) => panic!("unknown dependency kind {other:?} in {from}"),
            };
            graph.edges.insert((from.clone(), how, short_name(name)));
        }
    }
    let always: BTreeSet<(String, String)> = graph
        .edges
        .iter()
        .filter(|(_, how, _)| *how == Use::Always)
        .map(|(from, _, to)| (from.clone(), to.clone()))
        .collect();
    graph.edges.retain(|(from, how, to)| {
        *how == Use::Always || !always.contains(&(from.clone(), to.clone()))
    });
    graph
}

/// The graph `docs/architecture.md` allows: the first fenced block of its `## Crate graph`
/// section, one `crate -> deps | test-only deps` line per crate.
fn documented_graph(architecture: &str) -> Graph {
    let section = architecture
        .split("\n## Crate graph\n")
        .nth(1)
        .expect("docs/architecture.md has a `## Crate graph` section")
        .split("\n## ")
        .next()
        .unwrap();
    let block = section
        .split("\n```")
        .nth(1)
        .expect("the crate graph section has a fenced block");
    let mut graph = Graph::default();
    for line in block.lines().skip(1) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (from, uses) = line.split_once("->").unwrap_or_else(|| {
            panic!("crate graph line {line:?}: write `crate -> deps | dev-deps`")
        });
        let from = from.trim();
        assert!(
            !from.is_empty() && !from.contains(char::is_whitespace),
            "crate graph line {line:?}: one crate name before `->`"
        );
        assert!(
            graph.crates.insert(from.to_owned()),
            "crate graph: {from} has two lines"
        );
        let (always, tests_only) = uses.split_once('|').unwrap_or((uses, ""));
        for (how, names) in [(Use::Always, always), (Use::TestsOnly, tests_only)] {
            for to in names.split_whitespace() {
                graph.edges.insert((from.to_owned(), how, to.to_owned()));
            }
        }
    }
    for (from, how, to) in &graph.edges {
        assert!(
            *how == Use::Always
                || !graph
                    .edges
                    .contains(&(from.clone(), Use::Always, to.clone())),
            "crate graph: {from} lists {to} on both sides of `|`; keep it left"
        );
    }
    graph
}

/// A cycle in the graph (all edges, tests-only ones too), as the path that closes it.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        done: &mut BTreeSet<&'a str>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for to in next.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(to, next, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, _, to) in edges {
        next.entry(from).or_default().push(to);
    }
    let mut done = BTreeSet::new();
    next.keys()
        .find_map(|node| visit(node, &next, &mut done, &mut Vec::new()))
}

/// Every crate `from` reaches through edges `how` allows, directly or not.
fn reaches(edges: &Edges, from: &str, how: impl Fn(Use) -> bool) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue = vec![from.to_owned()];
    while let Some(node) = queue.pop() {
        for (_, _, to) in edges.iter().filter(|(f, h, _)| *f == node && how(*h)) {
            if seen.insert(to.clone()) {
                queue.push(to.clone());
            }
        }
    }
    seen
}

/// The workspace's crate graph is the one `docs/architecture.md` writes down, and keeps the
/// layering the architecture states whatever the list says.
#[test]
fn the_crate_graph_is_the_one_documented() {
    let actual = workspace_graph();
    assert!(
        actual.crates.len() > 10 && actual.crates.contains("domain"),
        "found the workspace: {:?}",
        actual.crates
    );
    let architecture = std::fs::read_to_string(repo().join("docs/architecture.md")).unwrap();
    let documented = documented_graph(&architecture);

    let mut problems = String::new();
    for name in actual.crates.difference(&documented.crates) {
        problems += &format!("\nno line for crate {name}");
    }
    for name in documented.crates.difference(&actual.crates) {
        problems += &format!("\na line for {name}, which is no workspace crate");
    }
    let undocumented: Vec<_> = actual
        .edges
        .difference(&documented.edges)
        .cloned()
        .collect();
    if !undocumented.is_empty() {
        problems += &format!("\nundocumented edges:{}", show(undocumented));
    }
    let missing: Vec<_> = documented
        .edges
        .difference(&actual.edges)
        .cloned()
        .collect();
    if !missing.is_empty() {
        problems += &format!("\ndocumented edges the manifests lack:{}", show(missing));
    }
    assert!(
        problems.is_empty(),
        "the crate graph differs from `## Crate graph` in docs/architecture.md; \
         change the manifests or the list:{problems}"
    );

    if let Some(cycle) = find_cycle(&actual.edges) {
        panic!("the crate graph has a cycle: {}", cycle.join(" -> "));
    }
    let domain = reaches(&actual.edges, "domain", |_| true);
    assert!(
        domain.is_empty(),
        "domain depends on no Slipway crate, but uses {domain:?}"
    );
    let slip = reaches(&actual.edges, "slip", |how| how == Use::Always);
    assert_eq!(
        slip,
        BTreeSet::from(["api-types".to_owned()]),
        "slip builds against api-types alone"
    );
    let slip_tests = reaches(&actual.edges, "slip", |_| true);
    assert!(
        slip_tests.is_subset(&BTreeSet::from([
            "api-types".to_owned(),
            "test-support".to_owned()
        ])),
        "slip's tests use api-types and test-support alone, not {slip_tests:?}"
    );
}

/// The cycle check finds a cycle through a tests-only edge, and none in a layered graph.
#[test]
fn the_cycle_check_finds_cycles() {
    let edges = |list: &[(&str, Use, &str)]| -> Edges {
        list.iter()
            .map(|(from, how, to)| (from.to_string(), *how, to.to_string()))
            .collect()
    };
    let layered = edges(&[
        ("api", Use::Always, "store"),
        ("store", Use::Always, "domain"),
        ("store", Use::TestsOnly, "test-support"),
        ("api", Use::Always, "domain"),
    ]);
    assert_eq!(find_cycle(&layered), None);
    let cyclic = edges(&[
        ("api", Use::Always, "store"),
        ("store", Use::Always, "domain"),
        ("domain", Use::TestsOnly, "api"),
    ]);
    assert_eq!(
        find_cycle(&cyclic),
        Some(vec![
            "api".to_owned(),
            "store".to_owned(),
            "domain".to_owned(),
            "api".to_owned()
        ])
    );
}

/// Blocking file and process calls made directly in async code: an `async fn` or an `async`
/// block, but not a closure in it (closures here are handed to `spawn_blocking`, or run
/// inline on data already read) nor test code. Calls through a synchronous helper are not
/// seen: this catches the direct slip, not every path.
fn blocking_calls(source: &str) -> Vec<String> {
    use syn::visit::{self, Visit};

    /// Path methods that touch the disk; `.metadata()` and the like followed by `.await`
    /// are tokio's.
    const METHODS: &[&str] = &[
        "exists",
        "try_exists",
        "metadata",
        "symlink_metadata",
        "read_dir",
        "read_link",
        "canonicalize",
    ];

    struct Finder {
        /// The innermost function, and whether the code at hand runs on an async thread.
        within: Vec<(String, bool)>,
        std_fs: bool,
        std_file: bool,
        std_command: bool,
        found: Vec<String>,
    }

    fn path_of(path: &syn::Path) -> String {
        let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        names.join("::")
    }

    fn is_test(attrs: &[syn::Attribute]) -> bool {
        attrs.iter().any(|a| {
            let name = path_of(a.path());
            name.ends_with("test")
                || (name == "cfg"
                    && a.meta
                        .require_list()
                        .is_ok_and(|l| l.tokens.to_string().contains("test")))
        })
    }

    impl Finder {
        fn in_async(&self) -> bool {
            self.within.last().is_some_and(|(_, a)| *a)
        }

        fn found(&mut self, what: String) {
            if self.in_async() {
                let function = self
                    .within
                    .last()
                    .map(|(f, _)| f.clone())
                    .unwrap_or_default();
                self.found.push(format!("{what} in {function}"));
            }
        }

        fn nested(&mut self, name: Option<String>, is_async: bool, visit: impl FnOnce(&mut Self)) {
            let name = name.unwrap_or_else(|| {
                self.within
                    .last()
                    .map(|(f, _)| f.clone())
                    .unwrap_or_default()
            });
            self.within.push((name, is_async));
            visit(self);
            self.within.pop();
        }

        /// A call of a `std::fs` function (not a type's constructor such as `Permissions`).
        fn blocking_fs(&self, path: &str) -> bool {
            let function = |rest: &str| {
                rest.split("::")
                    .next()
                    .is_some_and(|s| s.starts_with(|c: char| c.is_lowercase()))
                    || rest == "File::open"
                    || rest == "File::create"
            };
            path.strip_prefix("std::fs::").is_some_and(function)
                || (self.std_fs && path.strip_prefix("fs::").is_some_and(function))
                || (self.std_file && (path == "File::open" || path == "File::create"))
        }
    }

    impl<'ast> Visit<'ast> for Finder {
        fn visit_item_mod(&mut self, i: &'ast syn::ItemMod) {
            if !is_test(&i.attrs) {
                visit::visit_item_mod(self, i);
            }
        }
        fn visit_item_fn(&mut self, i: &'ast syn::ItemFn) {
            if !is_test(&i.attrs) {
                let name = Some(i.sig.ident.to_string());
                self.nested(name, i.sig.asyncness.is_some(), |me| {
                    visit::visit_item_fn(me, i)
                });
            }
        }
        fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
            if !is_test(&i.attrs) {
                let name = Some(i.sig.ident.to_string());
                self.nested(name, i.sig.asyncness.is_some(), |me| {
                    visit::visit_impl_item_fn(me, i)
                });
            }
        }
        fn visit_expr_async(&mut self, i: &'ast syn::ExprAsync) {
            self.nested(None, true, |me| visit::visit_expr_async(me, i));
        }
        fn visit_expr_closure(&mut self, i: &'ast syn::ExprClosure) {
            let is_async = i.asyncness.is_some();
            self.nested(None, is_async, |me| visit::visit_expr_closure(me, i));
        }
        fn visit_expr_call(&mut self, i: &'ast syn::ExprCall) {
            if let syn::Expr::Path(function) = &*i.func {
                let path = path_of(&function.path);
                if self.blocking_fs(&path)
                    || path == "std::process::Command::new"
                    || (self.std_command && path == "Command::new")
                    || path == "std::thread::sleep"
                {
                    self.found(path);
                }
            }
            visit::visit_expr_call(self, i);
        }
        fn visit_expr_await(&mut self, i: &'ast syn::ExprAwait) {
            match &*i.base {
                // tokio's `entry.metadata().await` and the like.
                syn::Expr::MethodCall(call) => {
                    self.visit_expr(&call.receiver);
                    call.args.iter().for_each(|a| self.visit_expr(a));
                }
                _ => visit::visit_expr_await(self, i),
            }
        }
        fn visit_expr_method_call(&mut self, i: &'ast syn::ExprMethodCall) {
            let method = i.method.to_string();
            if METHODS.contains(&method.as_str()) {
                self.found(format!(".{method}()"));
            }
            visit::visit_expr_method_call(self, i);
        }
    }

    let file = syn::parse_file(source).expect("the workspace's sources parse");
    let mut finder = Finder {
        within: Vec::new(),
        std_fs: source.contains("use std::fs;") || source.contains("use std::{fs"),
        std_file: source.contains("std::fs::File;") || source.contains("fs::{File"),
        std_command: source.contains("std::process::Command;")
            || source.contains("process::{Command"),
        found: Vec::new(),
    };
    finder.visit_file(&file);
    finder.found
}

/// No blocking file or process call in the platform's async code: it would stall a Tokio
/// worker thread and every task on it. `slip` is a CLI, one command per process, and may.
#[test]
fn async_code_makes_no_blocking_calls() {
    let mut files = Vec::new();
    rust_files(&repo().join("crates"), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let relative = file.strip_prefix(repo()).unwrap().display().to_string();
        if relative.starts_with("crates/slip/") || !relative.contains("/src/") {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        for call in blocking_calls(&source) {
            problems.push(format!("{relative}: {call}"));
        }
    }
    assert!(
        problems.is_empty(),
        "blocking calls on async threads; use tokio::fs, tokio::process or spawn_blocking:\n{}",
        problems.join("\n")
    );
}

/// The blocking-call check finds what it should and nothing else.
#[test]
fn the_blocking_check_finds_blocking_calls() {
    let found = blocking_calls(
        r#"
        use std::fs;
        async fn serve(path: &Path) {
            let text = std::fs::read_to_string(path);
            fs::remove_dir_all(path);
            if path.exists() {}
            let inline = async { std::thread::sleep(ONE) };
            let off = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
            let mode = std::fs::Permissions::from_mode(0o600);
            let entry = tokio::fs::metadata(path).await;
            let found = entry.metadata().await;
        }
        fn start(path: &Path) { std::fs::create_dir_all(path); }
        #[cfg(test)]
        mod tests {
            async fn a_test() { std::fs::write("x", "y"); }
        }
        "#,
    );
    assert_eq!(
        found,
        [
            "std::fs::read_to_string in serve",
            "fs::remove_dir_all in serve",
            ".exists() in serve",
            "std::thread::sleep in serve",
        ]
    );
}
