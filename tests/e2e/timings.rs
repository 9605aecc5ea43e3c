//! `tbuild core --timings FILE.svg|FILE.html`: the picture parses as XML and holds one row
//! per target with its phases in order.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

/// A row of the picture: target -> (outcome, [(phase, start ms, end ms)]).
type Rows = BTreeMap<String, (String, Vec<(String, u64, u64)>)>;

fn read_rows(doc: &roxmltree::Document) -> (Rows, u64) {
    let svg = doc.descendants().find(|n| n.has_tag_name("svg")).expect("an <svg> element");
    let total: u64 = svg.attribute("data-total-ms").unwrap().parse().unwrap();
    let mut rows = Rows::new();
    for row in svg.descendants().filter(|n| n.attribute("class") == Some("row")) {
        let spans = row
            .descendants()
            .filter(|n| n.attribute("class") == Some("span"))
            .map(|n| {
                let ms = |a: &str| n.attribute(a).unwrap().parse::<u64>().unwrap();
                (n.attribute("data-phase").unwrap().to_string(), ms("data-start-ms"), ms("data-end-ms"))
            })
            .collect();
        let target = row.attribute("data-target").unwrap().to_string();
        let previous = rows.insert(target.clone(), (row.attribute("data-outcome").unwrap().to_string(), spans));
        assert!(previous.is_none(), "one row per target, {target} twice");
    }
    (rows, total)
}

fn phases(spans: &[(String, u64, u64)]) -> Vec<&str> {
    spans.iter().map(|s| s.0.as_str()).collect()
}

/// Spans of a row follow each other and lie inside the run.
fn assert_ordered(target: &str, spans: &[(String, u64, u64)], total: u64) {
    for (phase, start, end) in spans {
        assert!(start <= end && *end <= total, "{target} {phase}: {start}..{end} of {total}");
    }
    for pair in spans.windows(2) {
        assert!(pair[0].2 <= pair[1].1, "{target}: {:?} overlaps {:?}", pair[0], pair[1]);
    }
}

fn assert_self_contained(doc: &roxmltree::Document) {
    for node in doc.descendants().filter(|n| n.is_element()) {
        let name = node.tag_name().name();
        assert!(!["script", "link", "img", "iframe"].contains(&name), "no <{name}> in a self-contained picture");
        for attr in node.attributes() {
            assert!(!["href", "src"].contains(&attr.name()), "no {} on <{name}>", attr.name());
        }
    }
}

#[test]
fn timings_picture_has_a_row_per_target_with_its_phases() {
    let world = World::new();
    let svg_path = world.out("timings.svg");
    let mut args = world.core_args("main", "out", BINARIES);
    args.extend(["--timings".into(), svg_path.to_str().unwrap().into()]);
    assert_ok(&world.tbuild(&args.iter().map(String::as_str).collect::<Vec<_>>()));

    let text = std::fs::read_to_string(&svg_path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(doc.root_element().tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
    assert_self_contained(&doc);
    let (rows, total) = read_rows(&doc);
    assert_eq!(rows.keys().collect::<Vec<_>>(), ["tasker-ctl", "tasker-server", "tasker-worker"]);
    for (target, (outcome, spans)) in &rows {
        assert!(outcome.starts_with("built in"), "{target}: {outcome}");
        let p = phases(spans);
        assert_eq!(p.first(), Some(&"hash"), "{target}: {p:?}");
        // The last build span: a wait for cargo's lock splits a build in two.
        let build = p.iter().rposition(|x| *x == "build").unwrap_or_else(|| panic!("{target} built: {p:?}"));
        assert_eq!(p[build + 1], "pack", "{target}: {p:?}");
        assert_eq!(p.last(), Some(&"restore"), "a built target is published from the cache: {p:?}");
        assert_ordered(target, spans, total);
        assert!(spans[build].2 - spans[build].1 > 0, "{target}: a build takes time");
    }
    assert!(text.contains("3 targets: 0 restored, 3 built, 0 failed"), "the totals are drawn");

    // HTML, on a full hit: the same rows, restored, and a table per target.
    let html_path = world.out("timings.html");
    // Another --out: into "out" the repeat would be a no-op (outputs already in place).
    let mut args = world.core_args("main", "out-hit", BINARIES);
    args.extend(["--timings".into(), html_path.to_str().unwrap().into()]);
    assert_ok(&world.tbuild(&args.iter().map(String::as_str).collect::<Vec<_>>()));
    let text = std::fs::read_to_string(&html_path).unwrap();
    assert!(text.starts_with("<!DOCTYPE html>"));
    let options = roxmltree::ParsingOptions { allow_dtd: true, ..Default::default() };
    let doc = roxmltree::Document::parse_with_options(&text, options).expect("the page is well-formed");
    assert_self_contained(&doc);
    let (rows, total) = read_rows(&doc);
    assert_eq!(rows.len(), 3);
    for (target, (outcome, spans)) in &rows {
        assert!(outcome.starts_with("restored"), "{target}: {outcome}");
        assert_eq!(phases(spans), ["hash", "restore"], "{target}");
        assert_ordered(target, spans, total);
    }
    let table_rows = doc.descendants().filter(|n| n.has_tag_name("tr") && n.attribute("data-target").is_some()).count();
    assert_eq!(table_rows, 3);
    let leftovers: Vec<_> = std::fs::read_dir(world.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("timings-"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
}

#[test]
fn timings_needs_an_html_or_svg_name() {
    let world = World::new();
    let out = world.core_with("main", "out", &["--timings", "t.png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must end in .html or .svg"), "{}", stderr(&out));
    assert!(!Path::new(&world.out("out")).exists(), "refused before any work");
}
