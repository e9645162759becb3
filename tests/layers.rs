//! The layering check: in every crate of the workspace, a module imports only
//! modules of lower layers (`crate::…` paths, in `use` lines and inline), never
//! one of its own layer or above, so the modules form no cycle and each layer
//! can be read, tested and changed without the ones above it.
//!
//! The layer order is written down once, here; ARCHITECTURE.md mirrors it. A new
//! top-level module must be added to its crate's table. Within a layer, only the
//! edges listed in `SAME_LAYER` are allowed (an actor importing the actor that
//! it spawns). Items must be imported from their module, not through the crate
//! root's re-exports (`crate::ErrorCode`), so the check sees every edge.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// One crate: its source directory and its top-level modules, bottom layer first.
struct Crate {
    src: &'static str,
    layers: &'static [&'static [&'static str]],
    /// Allowed imports within one layer: (importer, imported).
    same_layer: &'static [(&'static str, &'static str)],
}

const CRATES: &[Crate] = &[
    // netcore-proto: the sans-IO protocol core.
    Crate {
        src: "proto/src",
        layers: &[
            // Shared: errors, time, ids, checksums, randomness, limits.
            &["error", "time", "ids", "crc", "rng", "config"],
            &["varint"],
            &["frame"],
            // One concern each, over frames.
            &["framing", "scheduler", "reassembly", "reliable", "secure"],
            // The link state machine joins them.
            &["link"],
            // The Python dialect: its codec and session, and the bridge that shows
            // a Python wire to a native endpoint as a native link.
            &["pydialect"],
            // Test tooling and measurements over whole links.
            &["sim"],
            &["overhead", "fuzzing"],
        ],
        same_layer: &[],
    },
    // netcore-actors: the actix runtime.
    Crate {
        src: "actors/src",
        layers: &[
            // Shared: link ids, clock and randomness, and the stand-ins of unit
            // tests; then the errors (a link's down reason may name a link id).
            &["ids", "clock", "testing"],
            &["error"],
            // Runtime events; the byte transports a link runs over; stats snapshots.
            &["event", "transport", "stats"],
            &["body"],
            // What queued outbound messages cost their bounds; the work budget.
            &["charges"],
            &["work_budget"],
            // The messages actors send each other and the link's handle.
            &["messages"],
            &["deadline", "supervision", "one_way_queue", "spool_backlog"],
            // The handle of the event bus, which every actor may publish on.
            &["event_bus"],
            // The actors: each reaches its neighbours through recipients.
            &[
                "event_bus_actor",
                "link",
                "scheduler_actor",
                "stream_actor",
                "router_actor",
                "timer_actor",
                "cache_actor",
            ],
        ],
        // A link actor spawns its scheduler actor and (through its session's
        // sink factory) its stream actors.
        same_layer: &[("link", "scheduler_actor"), ("link", "stream_actor")],
    },
    // netcore: the application API.
    Crate {
        src: "src",
        layers: &[
            &["actors"],
            &["app"],
            &["link"],
            &["endpoint", "forward"],
            &["serve"],
            // What users import and read: the prelude, and the guide (docs only).
            &["prelude", "guide"],
        ],
        same_layer: &[],
    },
    // The `netcore` command-line tool: a crate of its own on the library's
    // public API (`the_binary_uses_the_public_api_only` in tests/cli.rs).
    Crate {
        src: "src/bin/netcore",
        layers: &[
            // Printing and errors; the link options every command shares, and
            // the file store.
            &["output"],
            &["link_args", "files"],
            // The built-in routes, which `recv-file` and `watch` serve too.
            &["serve"],
            // The other subcommands.
            &["call", "transfer", "watch", "bridge", "ports", "gateway"],
        ],
        same_layer: &[],
    },
];

/// A module's layer in `krate`, if the table has it.
fn layer_of(krate: &Crate, module: &str) -> Option<usize> {
    krate
        .layers
        .iter()
        .position(|layer| layer.contains(&module))
}

/// Removes line comments (doc comments too), so a doc link is not an import.
fn strip_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The first path segments after every `crate::` in `source`
/// (`crate::a::B`, `crate::{a::B, c}`).
fn crate_imports(source: &str) -> BTreeSet<String> {
    let source = strip_comments(source);
    let mut found = BTreeSet::new();
    let mut rest = source.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + "crate::".len()..];
        rest = after;
        if before.is_some_and(|c| is_ident(c) || c == '$') {
            continue; // `other_crate::`, or `$crate::` in a macro
        }
        if let Some(group) = after.strip_prefix('{') {
            // The group's items: split at its top-level commas, up to its `}`.
            let mut depth = 0;
            let mut items = vec![String::new()];
            for c in group.chars() {
                match c {
                    '}' if depth == 0 => break,
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(String::new()),
                    _ => {}
                }
                if let Some(item) = items.last_mut() {
                    item.push(c);
                }
            }
            for item in items {
                let item = item.trim_start_matches(',').trim_start();
                let segment: String = item.chars().take_while(|&c| is_ident(c)).collect();
                if !segment.is_empty() {
                    found.insert(segment);
                }
            }
        } else {
            let segment: String = after.chars().take_while(|&c| is_ident(c)).collect();
            if !segment.is_empty() {
                found.insert(segment);
            }
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display())
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// What is wrong with `module` importing `imports` in `krate`.
fn violations(krate: &Crate, module: &str, imports: &BTreeSet<String>) -> Vec<String> {
    let Some(own) = layer_of(krate, module) else {
        return vec![format!(
            "{}: module `{module}` is in no layer; add it to the table in tests/layers.rs \
             and ARCHITECTURE.md",
            krate.src
        )];
    };
    let mut wrong = Vec::new();
    for import in imports {
        if import == module || import == "self" {
            continue;
        }
        match layer_of(krate, import) {
            None => wrong.push(format!(
                "{}: `{module}` imports `crate::{import}`, which is no module of the table \
                 (import it from the module that defines it)",
                krate.src
            )),
            Some(layer) if layer < own => {}
            Some(layer) if layer == own && krate.same_layer.contains(&(module, import)) => {}
            Some(layer) => wrong.push(format!(
                "{}: `{module}` (layer {own}) imports `{import}` (layer {layer}): \
                 modules may import only lower layers",
                krate.src
            )),
        }
    }
    wrong
}

#[test]
fn every_module_imports_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wrong = Vec::new();
    for krate in CRATES {
        let src = root.join(krate.src);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap_or(&file);
            let first = relative.components().next();
            let Some(first) = first.and_then(|c| c.as_os_str().to_str()) else {
                continue;
            };
            let module = first.trim_end_matches(".rs");
            if module == "lib" || module == "main" {
                continue; // the crate root sits above every layer
            }
            if krate.src == "src" && module == "bin" {
                continue; // the binaries are crates of their own, with their own table
            }
            let source = fs::read_to_string(&file).unwrap_or_default();
            for problem in violations(krate, module, &crate_imports(&source)) {
                wrong.push(format!("{problem} (in {})", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layering violations:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_table_entry_is_a_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in CRATES {
        for module in krate.layers.iter().flat_map(|layer| layer.iter()) {
            let src = root.join(krate.src);
            let exists = src.join(format!("{module}.rs")).is_file()
                || src.join(module).join("mod.rs").is_file();
            assert!(
                exists,
                "{}: `{module}` is in the table but not a module",
                krate.src
            );
        }
    }
}

#[test]
fn the_check_sees_upward_and_sideways_imports() {
    let actors = &CRATES[1];
    let imports = |source: &str| crate_imports(source);
    // Downwards: fine.
    let ok = imports("use crate::messages::{Apply, Pull};\nuse crate::clock::now;");
    assert!(violations(actors, "scheduler_actor", &ok).is_empty());
    // Upwards, in a group, inline, or through the root: each is caught.
    let up = imports("use crate::{error::CallError, link::LinkActor};");
    assert_eq!(violations(actors, "deadline", &up).len(), 1);
    let inline = imports("fn f() { crate::router_actor::Canceled; }");
    assert_eq!(violations(actors, "body", &inline).len(), 1);
    let root = imports("use crate::CallError;");
    assert_eq!(violations(actors, "body", &root).len(), 1);
    // Sideways between actors: only the listed edges.
    let sideways = imports("use crate::router_actor::Request;");
    assert_eq!(violations(actors, "link", &sideways).len(), 1);
    let spawned = imports("use crate::scheduler_actor::SchedulerActor;");
    assert!(violations(actors, "link", &spawned).is_empty());
    // Comments, other crates and `$crate` are not imports.
    let none = imports("/// see [`crate::link`]\nuse netcore_crate::x; $crate::y!();");
    assert!(none.is_empty(), "{none:?}");
}
