//! `vlab compare` and `vlab advise` on workspaces with and without results.

mod common;

use common::*;
use predicates::prelude::*;

fn write_state(ws: &std::path::Path, labs: &[(&str, &[(&str, &str)])]) {
    let mut state = serde_json::json!({ "labs": {} });
    for (lab, entries) in labs {
        let m: serde_json::Map<String, serde_json::Value> =
            entries.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
        state["labs"][lab] = serde_json::json!({ "measurements": m });
    }
    std::fs::create_dir_all(ws.join(".vlab")).unwrap();
    std::fs::write(ws.join(".vlab/state.json"), serde_json::to_vec(&state).unwrap()).unwrap();
}

fn svg_texts(path: &std::path::Path) -> (usize, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the chart is valid XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let bars = doc.descendants().filter(|n| n.has_tag_name("rect")).count() - 1;
    let words: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
    (bars, words.join(" | "))
}

#[test]
fn with_no_results_it_says_which_labs_to_run() {
    let ws = workspace();
    vlab(ws.path()).arg("compare").assert().success().stdout(
        predicate::str::contains("no measurements yet").and(predicate::str::contains("vlab check 01-bare-metal")),
    );
    let (bars, text) = svg_texts(&ws.path().join("compare.svg"));
    assert_eq!(bars, 0);
    assert!(text.contains("no numbers yet"), "{text}");
}

#[test]
fn recorded_results_become_a_table_and_a_chart() {
    let ws = workspace();
    write_state(
        ws.path(),
        &[
            (
                "01-bare-metal",
                &[
                    ("syscall.result.syscall_us", "150000"),
                    ("syscall.result.syscall_count", "400000"),
                    ("cpu.result.cpu_us", "500000"),
                    ("cpu.result.cpu_iterations", "300000"),
                ],
            ),
            (
                "07-uml",
                &[
                    ("boot.guest.syscall_us", "9000000"),
                    ("boot.guest.syscall_count", "400000"),
                    ("boot.boot.ms", "3800"),
                ],
            ),
            (
                "06-density",
                &[("containers.density.container_kib", "1300"), ("containers.density.container_start_ms", "50")],
            ),
        ],
    );
    let out = ws.path().join("charts/mine.svg");
    let (code, json) = json(ws.path(), &["compare", "--svg", out.to_str().unwrap()]);
    assert_eq!(code, 0);
    let uml = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["metric"] == "syscall" && r["tier"] == "User-Mode-Linux")
        .unwrap()
        .clone();
    assert_eq!(uml["vs_bare_metal"].as_f64().unwrap(), 60.0);
    assert!(json["missing"].as_array().unwrap().iter().any(|m| m.as_str().unwrap().contains("09-software-emulation")));
    let (bars, text) = svg_texts(&out);
    assert!(bars >= 6, "{bars} bars");
    assert!(text.contains("60.00×") && text.contains("Every tier, measured on"), "{text}");
    assert!(text.contains("log scale"), "axes say their scale: {text}");
    vlab(ws.path())
        .args(["compare", "--svg", out.to_str().unwrap()])
        .assert()
        .success()
        .stdout(predicate::str::contains("60.00× bare metal"));
}

#[test]
fn advise_answers_the_field_guides_questions_with_measured_numbers() {
    let ws = workspace();
    write_state(
        ws.path(),
        &[(
            "06-density",
            &[("containers.density.container_kib", "1300"), ("containers.density.container_start_ms", "50")],
        )],
    );
    let (_, a) = json(ws.path(), &["advise", "--other-os", "no", "--strong-isolation", "no", "--hardware-virt", "no"]);
    assert_eq!(a["tier"], "containers");
    assert!(a["evidence"].to_string().contains("1300"), "{a}");
    let (_, a) = json(ws.path(), &["advise", "--other-arch", "yes"]);
    assert_eq!(a["tier"], "software emulation");
    let (_, a) = json(ws.path(), &["advise", "--other-os", "yes", "--hardware-virt", "yes"]);
    assert_eq!(a["tier"], "hardware-assisted (KVM)");
    vlab(ws.path()).args(["advise", "--other-os", "maybe"]).assert().code(2).stderr(predicate::str::contains("yes"));
}
