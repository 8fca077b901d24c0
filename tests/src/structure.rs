//! The shape of the workspace, checked as a test: inside each crate no module imports one that
//! imports it back (the floors of ARCHITECTURE.md, "The structure"), and no function outside
//! tests is longer than a screenful and a half. Read from the sources as text: comments,
//! strings and test code are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a function outside tests may be, in lines.
const MAX_FN_LINES: usize = 150;

/// The crates whose modules are checked.
const CRATES: [&str; 7] = [
    "format", "config", "storage", "recorder", "uplink", "cli", "tests",
];

/// A source file with its comments and the contents of its string and character literals
/// blanked (newlines kept, so line numbers hold).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, s: &[u8]| {
        out.extend(s.iter().map(|&c| if c == b'\n' { c } else { b' ' }))
    };
    while i < b.len() {
        let rest = &b[i..];
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let end = rest[2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(rest.len(), |p| p + 4);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if !prev_ident
            && rest[0] == b'r'
            && (rest.get(1) == Some(&b'"') || rest.get(1) == Some(&b'#'))
        {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push(rest[0]);
                i += 1;
                continue;
            }
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(rest.len(), |p| body + p + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            out.push(b'"');
            blank(&mut out, &rest[1..end.saturating_sub(1).max(1)]);
            out.push(b'"');
            i += end;
        } else if rest[0] == b'\'' && char_literal_len(rest).is_some() {
            let n = char_literal_len(rest).unwrap_or(1);
            blank(&mut out, &rest[..n]);
            i += n;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The length of a character literal at the start of `s` (not a lifetime).
fn char_literal_len(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'\\') {
        let close = s[2..].iter().take(10).position(|&c| c == b'\'')?;
        return Some(close + 3);
    }
    let text = std::str::from_utf8(&s[1..s.len().min(6)]).unwrap_or("");
    let c = text.chars().next()?;
    (s.get(1 + c.len_utf8()) == Some(&b'\'')).then_some(2 + c.len_utf8())
}

/// The index of the brace that closes the one at `open`.
fn closing(code: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (k, &c) in code.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Byte ranges of test code: `#[cfg(test)]` items and `#[test]` functions.
fn test_ranges(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    for pat in ["#[cfg(test)]", "#[test]", "#[tokio::test"] {
        let mut from = 0;
        while let Some(p) = code[from..].find(pat) {
            let at = from + p;
            if let Some(open) = code[at..].find('{') {
                out.push((at, closing(b, at + open)));
            }
            from = at + pat.len();
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

struct Crate {
    /// Which top-level module imports which.
    edges: BTreeMap<String, BTreeSet<String>>,
    /// Functions outside tests over the limit: (lines, file, line, name).
    long: Vec<(usize, String, usize, String)>,
}

fn read_crate(root: &Path, name: &str) -> Crate {
    let src = root.join(name).join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("a crate's src")
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if p.is_dir() {
                Some(n)
            } else {
                n.strip_suffix(".rs")
                    .filter(|m| *m != "lib" && *m != "main")
                    .map(str::to_owned)
            }
        })
        .collect();
    let mut c = Crate {
        edges: BTreeMap::new(),
        long: Vec::new(),
    };
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .map(|x| {
                x.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_owned()
            })
            .unwrap_or_default();
        let is_test_file = rel.ends_with("tests.rs") || rel.starts_with("tests");
        if is_test_file {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&file).expect("readable source"));
        let tests = test_ranges(&code);
        let in_test = |at: usize| tests.iter().any(|&(a, b)| a <= at && at <= b);
        // `crate::x`, `crate::{x, y::z}`: the top-level modules named.
        let mut from = 0;
        while let Some(p) = code[from..].find("crate::") {
            let at = from + p;
            from = at + 7;
            let before = code[..at].chars().last();
            if in_test(at)
                || before.is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == ':')
            {
                continue;
            }
            let rest = &code[at + 7..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let end = closing(rest.as_bytes(), 0);
                group[..end.saturating_sub(1)]
                    .split(',')
                    .filter_map(|s| s.trim().split([':', ' ', '{']).next())
                    .collect()
            } else {
                rest.split(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .next()
                    .into_iter()
                    .collect()
            };
            for n in names {
                if modules.contains(n) && n != top {
                    c.edges.entry(top.clone()).or_default().insert(n.to_owned());
                }
            }
        }
        // Every `fn name(…) … {`: its length to the closing brace.
        let b = code.as_bytes();
        let mut from = 0;
        while let Some(p) = code[from..].find("fn ") {
            let at = from + p;
            from = at + 3;
            let before = code[..at].chars().last();
            if in_test(at) || before.is_some_and(|ch| ch.is_alphanumeric() || ch == '_') {
                continue;
            }
            let fn_name: String = code[at + 3..]
                .chars()
                .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
                .collect();
            let (Some(open), semi) = (code[at..].find('{'), code[at..].find(';')) else {
                continue;
            };
            if semi.is_some_and(|s| s < open) || fn_name.is_empty() {
                continue;
            }
            let end = closing(b, at + open);
            let lines = code[at..end].matches('\n').count() + 1;
            if lines > MAX_FN_LINES {
                let line = code[..at].matches('\n').count() + 1;
                c.long.push((
                    lines,
                    format!("{name}/src/{}", rel.display()),
                    line,
                    fn_name,
                ));
            }
        }
    }
    c
}

/// The groups of modules that import each other, round a circle (Tarjan's algorithm).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let i = w.index.len();
        w.index.insert(v, i);
        w.low.insert(v, i);
        w.stack.push(v);
        for n in w.edges.get(v).into_iter().flatten() {
            let n = n.as_str();
            if !w.index.contains_key(n) {
                visit(w, n);
                let l = w.low[n].min(w.low[v]);
                w.low.insert(v, l);
            } else if w.stack.contains(&n) {
                let l = w.index[n].min(w.low[v]);
                w.low.insert(v, l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = Vec::new();
            while let Some(x) = w.stack.pop() {
                group.push(x.to_owned());
                if x == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                w.out.push(group);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
        .collect();
    for n in nodes {
        if !w.index.contains_key(n) {
            visit(&mut w, n);
        }
    }
    w.out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the tests crate")
        .to_owned()
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    for name in CRATES {
        let c = read_crate(&workspace(), name);
        for group in circles(&c.edges) {
            let pairs: Vec<String> = group
                .iter()
                .flat_map(|a| {
                    c.edges[a]
                        .iter()
                        .filter(|b| group.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            found.push(format!("{name}: {}", pairs.join(", ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn no_function_outside_tests_is_over_150_lines() {
    let mut long: Vec<String> = CRATES
        .iter()
        .flat_map(|n| read_crate(&workspace(), n).long)
        .map(|(lines, file, line, name)| format!("{file}:{line} {name}: {lines} lines"))
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checks_see_a_circle_and_a_long_function() {
    // A circle a -> b -> a, and c outside it.
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert(
        "b".to_owned(),
        BTreeSet::from(["a".to_owned(), "c".to_owned()]),
    );
    assert_eq!(circles(&edges), [vec!["a".to_owned(), "b".to_owned()]]);
    // Comments, strings and test code do not count; code does.
    let src = "// crate::x\nfn f() { let s = \"crate::y }\"; }\n#[cfg(test)]\nmod tests { fn g() { crate::z; } }\n";
    let code = code_only(src);
    assert!(!code.contains("crate::x") && !code.contains("crate::y"));
    assert!(code.contains("crate::z"));
    let t = test_ranges(&code);
    let z = code.find("crate::z").expect("kept");
    assert!(t.iter().any(|&(a, b)| a <= z && z <= b));
    // A crate on disk: a module circle, a 151-line function, and a long one in its tests.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = dir.path().join("x/src");
    std::fs::create_dir_all(&src).expect("the crate's folder");
    let body = "    let _ = 1;\n".repeat(149);
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").expect("lib.rs");
    std::fs::write(
        src.join("a.rs"),
        format!("use crate::b::g;\npub fn f() {{\n{body}}}\n#[cfg(test)]\nmod tests {{ fn t() {{\n{body}{body}}} }}\n"),
    )
    .expect("a.rs");
    std::fs::write(src.join("b.rs"), "pub fn g() { crate::a::f() }\n").expect("b.rs");
    let c = read_crate(dir.path(), "x");
    assert_eq!(circles(&c.edges), [vec!["a".to_owned(), "b".to_owned()]]);
    let long: Vec<(usize, &str)> = c.long.iter().map(|l| (l.0, l.3.as_str())).collect();
    assert_eq!(long, [(151, "f")], "the test function does not count");
}
