#!/usr/bin/env python3
"""Turns the rounds of bench/steps/run.sh into bench/results/steps.{json,md}.

Usage: report.py --work DIR --command CMD --json OUT.json --md OUT.md

Reads DIR/rust.jsonl and DIR/python.jsonl (one JSON object per round),
DIR/pii-scores.json (evaluate.py --json over both contenders' findings) and
the dumped page texts in DIR/dump-{weft,pypdf}/ for the quality scores
against pdftotext (the functions of plugins/pdf-load/quality/score.py).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "plugins", "pdf-load", "quality"))
import score as quality  # noqa: E402


def rounds(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def median(rs, key, field):
    values = [r[key][field] for r in rs if r.get(key, {}).get(field) is not None]
    return statistics.median(values) if values else None, values


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){mem}, {platform.system()} {platform.release()}"


def quality_scores(pdf_dir, dump, names):
    """Mean word F1 and order similarity vs pdftotext over docs with >= 20 reference words.

    Scored against the reference with pdftotext's visually ordered right-to-left runs restored to
    logical order (`score.restore_rtl_runs`, the rule of plugins/pdf-load/quality/REPORT.md), and
    against the raw reference (`raw_*`)."""
    rows = {}
    for name in names:
        raw_text = quality.pdftotext(os.path.join(pdf_dir, name))
        ref_text, _ = quality.restore_rtl_runs(raw_text)
        ref = quality.words(ref_text)
        if len(ref) < 20:
            continue
        path = os.path.join(dump, name + ".txt")
        with open(path, encoding="utf-8") as f:
            got_text = f.read()
        got = quality.words(got_text)
        rows[name] = (
            quality.f1(ref, got),
            quality.order_similarity(quality.pages(ref_text), quality.pages(got_text)),
            quality.f1(quality.words(raw_text), got),
        )
    n = len(rows)
    return {
        "docs": n,
        "mean_f1": sum(r[0] for r in rows.values()) / n if n else None,
        "mean_order": sum(r[1] for r in rows.values()) / n if n else None,
        "raw_mean_f1": sum(r[2] for r in rows.values()) / n if n else None,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--pdf-dir", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    args = ap.parse_args()
    rust = rounds(os.path.join(args.work, "rust.jsonl"))
    py = rounds(os.path.join(args.work, "python.jsonl"))
    with open(os.path.join(args.work, "pii-scores.json"), encoding="utf-8") as f:
        pii = json.load(f)
    versions = {}
    with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
        for line in f:
            if "==" in line and not line.startswith("#"):
                name, version = line.strip().split("==")
                versions[name] = version
    poppler = subprocess.run(["pdftotext", "-v"], capture_output=True, text=True)
    versions["pdftotext"] = (poppler.stderr or poppler.stdout).splitlines()[0] if (poppler.stderr or poppler.stdout) else "?"

    def m(rs, key, field):
        return median(rs, key, field)[0]

    def cpu_or_wall(rs, key):
        # The sandbox/native ratio compares on-CPU time of the attempts'
        # thread (per document the median of --pdf-reps attempts): on a
        # shared machine wall time also counts the time a side was not
        # scheduled. Older results without it fall back to wall time.
        cpu = m(rs, key, "cpu_secs")
        return cpu if cpu is not None else m(rs, key, "secs")

    med = {
        "chunk_weft_mb_s": m(rust, "chunk", "mb_per_s"),
        "chunk_langchain_mb_s": m(py, "chunk_langchain", "mb_per_s"),
        "pii_weft_mb_s": m(rust, "pii_mask", "mb_per_s"),
        "pii_presidio_mb_s": m(py, "pii_presidio", "mb_per_s"),
        "summarize_weft_pages_s": m(rust, "summarize", "pages_per_s"),
        "pdf_sandbox_s": cpu_or_wall(rust, "pdf_load_sandbox"),
        "pdf_native_s": cpu_or_wall(rust, "pdf_load_native"),
        "pdf_sandbox_pages_s": m(rust, "pdf_load_sandbox", "pages_per_s"),
        "pdf_native_pages_s": m(rust, "pdf_load_native", "pages_per_s"),
        "pdf_pypdf_pages_s": m(py, "pdf_pypdf", "pages_per_s"),
        "pdf_pdftotext_pages_s": m(py, "pdf_pdftotext", "pages_per_s"),
        "big_sandbox_s": cpu_or_wall(rust, "pdf_load_big_sandbox"),
        "big_native_s": cpu_or_wall(rust, "pdf_load_big_native"),
        "big_sandbox_pages_s": m(rust, "pdf_load_big_sandbox", "pages_per_s"),
        "big_native_pages_s": m(rust, "pdf_load_big_native", "pages_per_s"),
        "big_pypdf_pages_s": m(py, "pdf_big_pypdf", "pages_per_s"),
        "big_pdftotext_pages_s": m(py, "pdf_big_pdftotext", "pages_per_s"),
        # The same sandbox with components compiled without wasmtime's epoch
        # checks (no step deadlines): a reference for what the checks cost.
        "pdf_unchecked_s": cpu_or_wall(rust, "pdf_load_sandbox_unchecked"),
        "big_unchecked_s": cpu_or_wall(rust, "pdf_load_big_sandbox_unchecked"),
    }

    def ratio(a, b):
        return a / b if a is not None and b else None

    docs = rust[0]["pdf_load_sandbox"]["names"] if rust and "pdf_load_sandbox" in rust[0] else []
    qual = {
        "weft": quality_scores(args.pdf_dir, os.path.join(args.work, "dump-weft"), docs),
        "pypdf": quality_scores(args.pdf_dir, os.path.join(args.work, "dump-pypdf"), docs),
    }
    w, p = pii["weft"], pii.get("presidio", {})

    def total(scores, types):
        tp = sum(scores[t]["tp"] for t in types if t in scores)
        fp = sum(scores[t].get("fp", 0) for t in types if t in scores)
        fn = sum(scores[t].get("fn", 0) for t in types if t in scores)
        return (tp / (tp + fp) if tp + fp else None), (tp / (tp + fn) if tp + fn else None)

    # Recall is compared on the types both can find (Presidio has no PERSON
    # without its NER model).
    shared = ["EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS", "DATE_OF_BIRTH"]
    weft_p, weft_r = total(w, shared)
    pres_p, pres_r = total(p, shared) if p else (None, None)

    targets = [
        ("pdf-load sandbox time <= 1.3x native (corpus)", ratio(med["pdf_sandbox_s"], med["pdf_native_s"]), "<=", 1.3),
        ("pdf-load sandbox time <= 1.3x native (large document)", ratio(med["big_sandbox_s"], med["big_native_s"]), "<=", 1.3),
        ("pdf-load sandbox time <= 1.5x native (corpus; issue 7)", ratio(med["pdf_sandbox_s"], med["pdf_native_s"]), "<=", 1.5),
        ("pdf-load sandbox time <= 1.5x native (large document; issue 7)", ratio(med["big_sandbox_s"], med["big_native_s"]), "<=", 1.5),
        ("pdf-load sandbox pages/s >= 10x pypdf (corpus)", ratio(med["pdf_sandbox_pages_s"], med["pdf_pypdf_pages_s"]), ">=", 10),
        ("pdf-load sandbox pages/s >= 10x pypdf (large document)", ratio(med["big_sandbox_pages_s"], med["big_pypdf_pages_s"]), ">=", 10),
        ("chunk MB/s >= 10x LangChain", ratio(med["chunk_weft_mb_s"], med["chunk_langchain_mb_s"]), ">=", 10),
        ("pii-mask MB/s >= 100x Presidio", ratio(med["pii_weft_mb_s"], med["pii_presidio_mb_s"]), ">=", 100),
        ("pii-mask recall >= Presidio's (shared types)", ratio(weft_r, pres_r), ">=", 1.0),
    ]

    def met(value, op, bound):
        if value is None:
            return None
        return value <= bound if op == "<=" else value >= bound

    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": args.command,
        "rounds": {"rust": len(rust), "python": len(py)},
        "versions": versions,
        "medians": med,
        "quality_vs_pdftotext": qual,
        "pii": {"weft": {"precision": weft_p, "recall": weft_r}, "presidio": {"precision": pres_p, "recall": pres_r},
                "per_type": pii},  # fmt: skip
        "targets": [{"what": t, "value": v, "op": op, "bound": b, "met": met(v, op, b)} for t, v, op, b in targets],
        "raw": {"rust": rust, "python": py},
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

    def f(x, digits=2):
        return "n/a" if x is None else f"{x:,.{digits}f}"

    def spread(rs, key, field):
        _, values = median(rs, key, field)
        return " / ".join(f"{v:,.2f}" for v in values)

    first_rust = rust[0] if rust else {}
    first_py = py[0] if py else {}
    lines = [
        "## Step throughput, sandboxed, against Python peers",
        "",
        f"Run on {result['date']}, {result['machine']}. Command: `{args.command}`. "
        f"{len(rust)} rounds per side, the Rust and Python processes alternating round by round (which goes "
        "first alternates too); medians. Weft numbers are real component attempts through the engine "
        "(fresh sandbox per attempt, compile excluded); `native` is the same pdf-load crate linked into the "
        "bench binary; the sandbox/native time ratios are on-CPU time of the attempts' thread, per document the "
        f"median of {first_rust.get('pdf_load_sandbox', {}).get('reps', 1)} attempts per side, summed (pages/s are wall time). Peers: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "| step | input | weft (sandbox) | peer | ratio |",
        "|---|---|---:|---:|---:|",
        f"| chunk (1000 chars, overlap 100) | {first_rust.get('chunk', {}).get('bytes', 0) / 1e6:.1f} MB text | "
        f"{f(med['chunk_weft_mb_s'])} MB/s | LangChain RecursiveCharacterTextSplitter {f(med['chunk_langchain_mb_s'])} MB/s | "
        f"{f(ratio(med['chunk_weft_mb_s'], med['chunk_langchain_mb_s']), 1)}x |",
        f"| pii-mask (tag style) | {first_rust.get('pii_mask', {}).get('bytes', 0) / 1e6:.2f} MB, labelled corpus "
        f"(Presidio: first {first_py.get('pii_presidio', {}).get('records', 0)} documents) | "
        f"{f(med['pii_weft_mb_s'])} MB/s | Presidio analyzer+anonymizer, pattern recognizers {f(med['pii_presidio_mb_s'], 3)} MB/s | "
        f"{f(ratio(med['pii_weft_mb_s'], med['pii_presidio_mb_s']), 0)}x |",
        f"| summarize (extractive, 5 sentences) | {first_rust.get('summarize', {}).get('pages', 0)} pages, one attempt per document | "
        f"{f(med['summarize_weft_pages_s'], 1)} pages/s | (no peer) | |",
        f"| pdf-load, corpus | {first_rust.get('pdf_load_sandbox', {}).get('pages', 0)} pages, "
        f"{first_rust.get('pdf_load_sandbox', {}).get('docs', 0)} documents | {f(med['pdf_sandbox_pages_s'], 0)} pages/s | "
        f"native {f(med['pdf_native_pages_s'], 0)}, pypdf {f(med['pdf_pypdf_pages_s'], 1)}, pdftotext "
        f"{f(med['pdf_pdftotext_pages_s'], 1)} pages/s | {f(ratio(med['pdf_sandbox_s'], med['pdf_native_s']))}x native time, "
        f"{f(ratio(med['pdf_sandbox_pages_s'], med['pdf_pypdf_pages_s']), 1)}x pypdf |",
        f"| pdf-load, large document | {first_rust.get('pdf_load_big_sandbox', {}).get('pages', 0)} pages | "
        f"{f(med['big_sandbox_pages_s'], 0)} pages/s | native {f(med['big_native_pages_s'], 0)}, pypdf "
        f"{f(med['big_pypdf_pages_s'], 1)}, pdftotext {f(med['big_pdftotext_pages_s'], 1)} pages/s | "
        f"{f(ratio(med['big_sandbox_s'], med['big_native_s']))}x native time, "
        f"{f(ratio(med['big_sandbox_pages_s'], med['big_pypdf_pages_s']), 1)}x pypdf |",
        "",
        f"For reference, not how Weft runs steps: the same sandbox with the component compiled without "
        f"wasmtime's epoch checks, which are what stops a step that computes past its timeout, takes "
        f"{f(ratio(med['pdf_unchecked_s'], med['pdf_native_s']))}x native time on the corpus and "
        f"{f(ratio(med['big_unchecked_s'], med['big_native_s']))}x on the large document (same runs, "
        "the three sides taking turns per attempt). The difference to the rows above is the price of "
        "deadlines.",
        "",
        f"Text quality against `pdftotext` on the corpus documents with >= 20 reference words "
        f"({qual['weft']['docs']} documents; word F1 and word-order similarity as in "
        "`plugins/pdf-load/quality/`, right-to-left runs of the reference restored to logical order): "
        f"pdf-load (sandbox output) F1 {f(qual['weft']['mean_f1'], 4)}, order {f(qual['weft']['mean_order'], 4)}; "
        f"pypdf F1 {f(qual['pypdf']['mean_f1'], 4)}, order {f(qual['pypdf']['mean_order'], 4)}. Against the raw "
        f"reference: F1 {f(qual['weft']['raw_mean_f1'], 4)} and {f(qual['pypdf']['raw_mean_f1'], 4)}.",
        "",
        f"PII detection on the same labelled corpus (types both can find; see `plugins/pii-mask/eval/REPORT.md`): "
        f"weft precision {f(weft_p, 3)}, recall {f(weft_r, 3)}; Presidio precision {f(pres_p, 3)}, recall "
        f"{f(pres_r, 3)}. Presidio runs with a blank spaCy pipeline (its NER model is not on PyPI), so it finds no "
        "PERSON; its DATE_TIME findings stand in for dates of birth.",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for t in result["targets"]:
        status = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['what']} | {f(t['value'])} | {status} |")
    lines += [
        "",
        "Per-round values (weft / peer): "
        f"chunk {spread(rust, 'chunk', 'mb_per_s')} / {spread(py, 'chunk_langchain', 'mb_per_s')} MB/s; "
        f"pii-mask {spread(rust, 'pii_mask', 'mb_per_s')} / {spread(py, 'pii_presidio', 'mb_per_s')} MB/s; "
        f"pdf-load corpus sandbox {spread(rust, 'pdf_load_sandbox', 'secs')} s, native "
        f"{spread(rust, 'pdf_load_native', 'secs')} s; large document sandbox "
        f"{spread(rust, 'pdf_load_big_sandbox', 'secs')} s, native {spread(rust, 'pdf_load_big_native', 'secs')} s.",
        "",
    ]
    with open(args.md, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
