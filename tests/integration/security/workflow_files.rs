//! A workflow author: the files a host loads.

use std::time::{Duration, Instant};

use super::weft_within;

#[test]
fn two_served_workflows_with_the_same_name_refuse_to_start_instead_of_shadowing() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: twin\nversion: '1'\nsteps:\n  - id: a\n    plugin: chunk\n";
    std::fs::write(dir.path().join("a.yaml"), yaml).unwrap();
    std::fs::write(dir.path().join("b.yaml"), yaml.replace("chunk", "pii-mask")).unwrap();
    // Nothing listens on port 1: the check must come before connecting.
    let args = ["serve", "--workflows", ".", "--nats", "nats://127.0.0.1:1"];
    let (code, stderr) = weft_within(dir.path(), &args, Duration::from_secs(30));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("are both named `twin`") && stderr.contains("a.yaml") && stderr.contains("b.yaml"),
        "{stderr}"
    );
}

#[test]
fn a_yaml_alias_bomb_or_a_huge_file_is_refused_quickly_by_validate() {
    use crate::support::weft_cmd;

    let dir = tempfile::tempdir().unwrap();
    // Nine levels of ten aliases each, as complex keys: 10^9 nodes if built.
    let mut bomb = String::from(
        "name: bomb\nversion: '1'\nsteps: [{id: a, plugin: chunk}]\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n",
    );
    for i in 1..=9 {
        bomb.push_str(&format!("? &x{i} [{}]\n: v\n", vec![format!("*x{}", i - 1); 10].join(", ")));
    }
    std::fs::write(dir.path().join("bomb.yaml"), bomb).unwrap();
    std::fs::write(dir.path().join("huge.yaml"), format!("name: h\n# {}\n", "x".repeat(64 << 20))).unwrap();
    let started = Instant::now();
    let out = weft_cmd(dir.path()).args(["validate", "bomb.yaml", "huge.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bomb.yaml:") && stdout.contains("expand to more than 100000 yaml nodes"), "{stdout}");
    assert!(stdout.contains("huge.yaml:1:1: the file is larger than the 1 MiB a workflow file may be"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn a_file_named_like_a_bundled_workflow_does_not_replace_it_in_weft_run() {
    use crate::support::{corpus_dir, weft_cmd};

    let dir = tempfile::tempdir().unwrap();
    // Dropped into the working directory by someone else, named to be run by mistake.
    std::fs::write(
        dir.path().join("pdf-digest"),
        "name: impostor\nversion: '1'\nsteps:\n  - id: c\n    plugin: chunk\n",
    )
    .unwrap();
    std::fs::copy(corpus_dir().join("002-trivial-libre-office-writer.pdf"), dir.path().join("doc.pdf")).unwrap();
    let run = |name: &str| weft_cmd(dir.path()).args(["run", name, "--input", "doc.pdf"]).output().unwrap();
    let bare = run("pdf-digest");
    let (stdout, stderr) = (String::from_utf8_lossy(&bare.stdout), String::from_utf8_lossy(&bare.stderr));
    assert!(stdout.contains("\"workflow\": \"pdf-digest\""), "the bundled workflow ran: {stdout}");
    assert!(
        stderr.contains(
            "note: running the bundled workflow `pdf-digest`; to run the file of that name, write `./pdf-digest`"
        ),
        "{stderr}"
    );
    let explicit = run("./pdf-digest");
    assert!(String::from_utf8_lossy(&explicit.stdout).contains("\"workflow\": \"impostor\""), "a path is the file");
}
