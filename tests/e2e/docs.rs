//! The repository as a newcomer clones it: links between the docs
//! resolve, and no build artefact is tracked.

use std::path::Path;
use std::process::Command;

use crate::common::root;

/// The repository's tracked files matching `pattern` (`git ls-files`).
fn tracked(pattern: &str) -> Vec<String> {
    let out = Command::new("git")
        .current_dir(root())
        .args(["ls-files", "-z", "--", pattern])
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The targets of the Markdown links `[text](target)` in `text`, outside
/// fenced code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            targets.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
    }
    targets
}

#[test]
fn relative_links_in_the_markdown_files_resolve() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in tracked("*.md") {
        let text = std::fs::read_to_string(root.join(&file)).expect("read");
        let dir = Path::new(&file).parent().unwrap_or(Path::new(""));
        for target in link_targets(&text) {
            let path = target.split('#').next().unwrap_or_default();
            // Web links, mail, anchors in the same file.
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            if !root.join(dir).join(path).exists() {
                broken.push(format!("{file}: ({target})"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to nothing:\n{}",
        broken.join("\n")
    );
    assert!(
        checked > 20,
        "only {checked} relative links found: is the parser right?"
    );
}

#[test]
fn docs_named_in_the_sources_exist() {
    // Comments and messages point readers at `docs/<page>.md`.
    let root = root();
    let mut missing = Vec::new();
    for file in tracked("*.rs")
        .into_iter()
        .chain(tracked("*.sh"))
        .chain(tracked("*.toml"))
    {
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue;
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("docs/") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
                .collect();
            rest = &rest[at + 5..];
            let name = name.trim_end_matches('.');
            if name.ends_with(".md") && !root.join(name).is_file() {
                missing.push(format!("{file}: {name}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs that do not exist:\n{}",
        missing.join("\n")
    );
}

/// Build artefacts stay out of git: compiled Python, npm's `node_modules`,
/// native Node addons, WASM components and shared libraries are made by
/// the project's scripts and the toolchain, never tracked.
#[test]
fn no_build_artefacts_are_tracked() {
    let artefacts: Vec<String> = tracked(".")
        .into_iter()
        .filter(|f| {
            f.split('/')
                .any(|part| part == "__pycache__" || part == "node_modules")
                || [
                    ".pyc", ".node", ".wasm", ".so", ".dylib", ".dll", ".o", ".a",
                ]
                .iter()
                .any(|ext| f.ends_with(ext))
        })
        .collect();
    assert!(
        artefacts.is_empty(),
        "build artefacts tracked by git:\n{}",
        artefacts.join("\n")
    );
}

#[test]
fn every_test_the_guarantees_name_exists() {
    let root = root();
    let text = std::fs::read_to_string(root.join("docs/guarantees.md")).expect("read");
    // Every source file that may hold a test, once.
    let mut sources = String::new();
    for file in tracked("*.rs") {
        if file.starts_with("tests/e2e/") || file.starts_with("runtime/src/") {
            sources.push_str(&std::fs::read_to_string(root.join(&file)).expect("read"));
        }
    }
    let mut named = 0;
    let mut missing = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        // Odd parts are inside backticks; a test is `module::name`.
        if i % 2 == 0 || !part.contains("::") || part.contains(' ') {
            continue;
        }
        let name = part.rsplit("::").next().unwrap_or_default();
        named += 1;
        if !sources.contains(&format!("fn {name}(")) {
            missing.push(part.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/guarantees.md names tests that do not exist: {missing:?}"
    );
    assert!(named > 15, "only {named} tests named: is the parser right?");
}
