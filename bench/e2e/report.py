#!/usr/bin/env python3
"""Turns bench/results/suite.json into BENCHMARKS.md (and a chart PNG).

BENCHMARKS.md is generated, never edited by hand: the prose that explains a
result lives in bench/e2e/analysis.md (included verbatim), the step-level and
queue fragments in bench/results/steps.md and bench/results/queue.md
(written by their own scripts, included verbatim when present).

Usage: report.py --results bench/results/suite.json --out BENCHMARKS.md --chart bench/results/suite.png
"""

import argparse
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TARGETS = {
    "e2e": 10.0,
    "orchestration": 20.0,
    "memory": 10.0,
    "cold_start": 10.0,
    "step_overhead": 0.10,
}


def median(values):
    return statistics.median(values) if values else float("nan")


def by_contender(rounds, key):
    out = {}
    for r in rounds:
        out.setdefault(r["contender"], []).append(r[key])
    return out


def mib(n):
    return f"{n / 2**20:,.0f} MiB"


def met(ok):
    return "**met**" if ok else "**missed**"


class Report:
    def __init__(self, results):
        self.r = results
        self.summary = []  # (what, weft, peer, ratio text, target text, met)
        self.sections = []
        self.chart = []  # (label, ratio, target)

    def judge(self, what, weft, peer, measured, target, ok, bar=None):
        """Adds one row to the targets table and, if `bar` = (label, ratio, target) is given, one bar to the
        chart."""
        self.summary.append((what, weft, peer, measured, target, ok))
        if bar:
            self.chart.append(bar)

    # ------------------------------------------------------------ comparisons

    def e2e(self):
        e = self.r.get("e2e")
        if not e:
            return
        rates = by_contender(e["rounds"], "jobs_per_s")
        pages = by_contender(e["rounds"], "pages_per_s")
        weft, celery = median(rates["weft"]), median(rates["celery"])
        ratio = weft / celery
        ok = ratio >= TARGETS["e2e"]
        notify = "with" if e.get("notify") else "without"
        self.judge("end-to-end PDF digest, jobs/s through the queue", f"{weft:.2f}", f"{celery:.2f}", f"{ratio:.1f}x",
                   ">= 10x", ok, bar=("PDF digest jobs/s", ratio, TARGETS["e2e"]))  # fmt: skip
        lines = [
            "## End-to-end PDF digest through the queue",
            "",
            f"Workflow `{e['workflow']}` (`{e['workflow_name']}`, {notify} a notify step) under `weft serve` "
            f"(JetStream) against the same pipeline as a Celery task on Redis (`bench/e2e/peer.py`). "
            f"Concurrency {e['concurrency']} on both sides (`weft serve --concurrency {e['concurrency']}`, "
            f"Celery prefork `--concurrency {e['concurrency']}`). Each round starts fresh servers and a warm worker, "
            f"then a Python client publishes {e['jobs_per_round']} jobs ({len(e['documents'])} corpus PDFs, "
            f"{e['pages_per_round']} pages in all; PDF bytes base64 in the message on both sides) and the clock "
            "runs from the first publish to the last job finished (Weft: its result event; Celery: its result in "
            "Redis). Rounds alternate which contender goes first.",
            "",
            "| contender | jobs/s (median) | pages/s (median) | rounds (jobs/s) | jobs ok / failed (all rounds) "
            "| notify POSTs received (all rounds) | worker CPU s per job (median) |",
            "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
        ]
        for name, label in [("weft", "`weft serve` + JetStream"), ("celery", "Celery + Redis, prefork")]:
            rounds = [r for r in e["rounds"] if r["contender"] == name]
            ok_n = sum(r["ok"] for r in rounds)
            bad_n = sum(r["failed"] for r in rounds)
            posts = sum(r["notify_posts"] for r in rounds)
            cpu = median([r["worker_cpu_s"] / r["jobs"] for r in rounds])
            lines.append(f"| {label} | {median(rates[name]):.2f} | {median(pages[name]):.1f} | "
                         f"{' / '.join(f'{x:.2f}' for x in rates[name])} | {ok_n} / {bad_n} | {posts} | "
                         f"{cpu * 1000:.1f} ms |")  # fmt: skip
        lines += ["", f"Ratio of medians: **{ratio:.1f}x** (target >= 10x): {met(ok)}.", ""]
        if e["excluded"]:
            lines += ["Corpus files left out because at least one side cannot digest them (the same typed failure "
                      "on both sides would measure error paths, not the pipeline):", ""]  # fmt: skip
            lines += [f"- `{name}`: {why}" for name, why in sorted(e["excluded"].items())]
            lines.append("")
        self.sections.append("\n".join(lines))

    def orchestration(self):
        o = self.r.get("orchestration")
        if not o:
            return
        rates = by_contender(o["rounds"], "jobs_per_s")
        weft, celery = median(rates["weft"]), median(rates["celery"])
        ratio = weft / celery
        ok = ratio >= TARGETS["orchestration"]
        self.judge("orchestration only: 5 no-op steps per job, jobs/s", f"{weft:.1f}", f"{celery:.1f}",
                   f"{ratio:.1f}x", ">= 20x", ok, bar=("5 no-op steps jobs/s", ratio, TARGETS["orchestration"]))  # fmt: skip
        lines = [
            "## Orchestration only: five no-op steps per job",
            "",
            f"`weft serve` running a five-step workflow of the `noop` test component (each step needs the one "
            f"before) against a Celery `chain` of five no-op tasks. Concurrency {o['concurrency']} on both sides. "
            f"Per round {o['weft_jobs']} Weft jobs or {o['celery_jobs']} Celery chains (fewer, so a round stays "
            "short; the rate is what is compared), published by a Python client while the warm worker runs; "
            "clock from the first publish to the last job finished.",
            "",
            "| contender | jobs/s (median) | step calls/s | rounds (jobs/s) | worker CPU per job (median) |",
            "| --- | ---: | ---: | --- | ---: |",
        ]
        for name, label in [("weft", "`weft serve`, 5 no-op steps"), ("celery", "Celery chain of 5 no-op tasks")]:
            rounds = [r for r in o["rounds"] if r["contender"] == name]
            cpu = median([r["worker_cpu_s"] / r["jobs"] for r in rounds])
            lines.append(f"| {label} | {median(rates[name]):.1f} | {5 * median(rates[name]):.0f} | "
                         f"{' / '.join(f'{x:.1f}' for x in rates[name])} | {cpu * 1000:.2f} ms |")  # fmt: skip
        lines += ["", f"Ratio of medians: **{ratio:.1f}x** (target >= 20x): {met(ok)}.", ""]
        self.sections.append("\n".join(lines))

    def memory(self):
        m = self.r.get("memory")
        if not m:
            return
        rows = {r["contender"]: r for r in m["rounds"]}
        weft = rows.get("weft")
        peers = [rows[k] for k in ("celery-prefork", "celery-threads") if k in rows]
        if not weft or not peers:
            return
        lines = [
            "## Memory with 64 jobs in flight",
            "",
            f"{m['in_flight']} PDF digest jobs (`{m['document']}`) published at once to a worker allowed "
            f"{m['in_flight']} at a time: "
            f"`weft serve --concurrency {' '.join([str(m['in_flight']), *m.get('weft_serve_args', [])])}` "
            "(one process; `--compute-slots N` lets N steps compute at once, as many as the cores, while the "
            "other jobs wait in the worker without a sandbox; a step waiting on the network gives its slot "
            "back; see `bench/results/memory.md`), Celery "
            f"prefork with {m['in_flight']} processes, and Celery's threads pool with {m['in_flight']} threads. "
            "The whole process tree is sampled every 50 ms from `/proc/PID/smaps_rollup` (RSS and PSS), and each "
            "process's own high-water mark (`VmHWM`) is read at the end. RSS counts the pages prefork children "
            "share once per child; PSS divides them among the sharers. Judged conservatively: Weft's peak is its "
            "high-water RSS (exact for one process, and never below its PSS); a one-process peer's is its "
            "high-water RSS too; prefork's is its peak summed PSS (its fair total, far below its summed RSS).",
            "",
            "| contender | processes | idle RSS | idle PSS | peak RSS (sampled) | peak PSS (sampled) "
            "| sum of VmHWM | judged peak | jobs ok |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]

        def judged(row):
            if row["processes"] > 1:
                return row["peak_pss"]
            return max(row.get("vmhwm_sum", 0), row["peak_rss"])

        labels = {"weft": "`weft serve`", "celery-prefork": "Celery prefork", "celery-threads": "Celery threads"}
        for row in [weft, *peers]:
            lines.append(f"| {labels[row['contender']]} | {row['processes']} | {mib(row['idle_rss'])} | "
                         f"{mib(row['idle_pss'])} | {mib(row['peak_rss'])} | {mib(row['peak_pss'])} | "
                         f"{mib(row.get('vmhwm_sum', 0))} | {mib(judged(row))} | {row['ok']}/{row['jobs']} |")  # fmt: skip
        lines.append("")
        if weft.get("peak_breakdown"):
            parts = sorted(weft["peak_breakdown"].items(), key=lambda kv: -kv[1])
            lines.append("Where Weft's resident memory was at its sampled peak (`/proc/PID/smaps`): "
                         + ", ".join(f"{kind} {mib(size)}" for kind, size in parts if size >= 2**20) + ".")  # fmt: skip
            lines.append("")
        for peer in peers:
            ratio = judged(peer) / judged(weft)
            ok = ratio >= TARGETS["memory"]
            label = labels[peer["contender"]]
            self.judge(f"peak memory, 64 jobs in flight, vs {label}", mib(judged(weft)), mib(judged(peer)),
                       f"{ratio:.1f}x less", ">= 10x less", ok, bar=(f"memory vs {label}", ratio, TARGETS["memory"]))  # fmt: skip
            lines.append(f"- vs {label}: **{ratio:.1f}x** less (target >= 10x): {met(ok)}.")
        lines.append("")
        lines.append("One sample per contender (memory is far less noisy than time here).")
        lines.append("")
        self.sections.append("\n".join(lines))

    def cold_start(self):
        c = self.r.get("cold_start")
        if not c:
            return
        secs = by_contender(c["rounds"], "seconds")
        weft, celery = median(secs["weft"]), median(secs["celery"])
        ratio = celery / weft
        ok = ratio >= TARGETS["cold_start"]
        self.judge("cold start to first job finished", f"{weft * 1000:.0f} ms", f"{celery * 1000:.0f} ms",
                   f"{ratio:.1f}x faster", ">= 10x faster", ok, bar=("cold start", ratio, TARGETS["cold_start"]))  # fmt: skip
        lines = [
            "## Cold start to the first job finished",
            "",
            f"One PDF digest job (`{c['document']}`) is queued before the worker exists; the clock starts when "
            "the worker process is spawned and stops when the job's result is seen (Weft: its result event, "
            "published just before the ack; Celery: its result in Redis, written just before the late ack). "
            "Weft runs with a warm compile cache (`--cache-dir`, filled by one earlier run); Celery with its "
            "bytecode compiled at install, `--without-mingle --without-gossip`, prefork concurrency "
            f"{c['concurrency']}, importing pypdf, LangChain, Presidio and scikit-learn at start as a worker module "
            "does. Rounds alternate.",
            "",
            "| contender | median | rounds |",
            "| --- | ---: | --- |",
        ]
        for name, label in [("weft", "`weft serve`, warm cache"), ("celery", "Celery worker")]:
            lines.append(f"| {label} | {median(secs[name]) * 1000:.0f} ms | "
                         f"{' / '.join(f'{x * 1000:.0f}' for x in secs[name])} ms |")  # fmt: skip
        lines += ["", f"Ratio of medians: **{ratio:.1f}x** faster (target >= 10x): {met(ok)}.", ""]
        self.sections.append("\n".join(lines))

    def step_overhead(self):
        s = self.r.get("step_overhead")
        if not s:
            return
        v = s["variants"]
        fresh = v["pooling"]["median_ns"] / 1e9
        reused = v["bare_reused"]["median_ns"] / 1e9
        extra = max(fresh - reused, 0.0)
        lines = [
            "## Per-step host overhead: fresh instance per call vs one reused instance",
            "",
            "Criterion, in one run: Weft's production attempt path (`Engine::run_attempt`: fresh store with "
            "its sandboxed WASI context and limits, instantiate the `noop` component, call `run` with one small "
            "item, drop) with and without the pooling allocator; the same instantiate + call + drop with plain "
            "wasmtime; and the same call on one instance kept alive (`host/benches/step_overhead.rs`).",
            "",
            f"Command: `{s['command']}`.",
            "",
            "| variant | median per call | 95% CI of the median |",
            "| --- | ---: | ---: |",
        ]
        labels = {"pooling": "Weft attempt, pooling allocator (default)", "on_demand": "Weft attempt, on-demand "
                  "allocator", "bare_fresh": "plain wasmtime, fresh instance", "bare_reused":
                  "plain wasmtime, one reused instance"}  # fmt: skip
        for name in ["pooling", "on_demand", "bare_fresh", "bare_reused"]:
            x = v[name]
            lines.append(f"| {labels[name]} | {x['median_ns'] / 1000:.1f} µs | "
                         f"{x['ci_low_ns'] / 1000:.1f} – {x['ci_high_ns'] / 1000:.1f} µs |")  # fmt: skip
        lines += [
            "",
            f"A fresh sandbox per step call costs {extra * 1e6:.1f} µs more than calling a kept instance. What "
            "that is worth in job throughput: (calls per job x that cost) / (worker CPU time per job, measured "
            "above in the same suite run). Calls per job: one per step, plus one per extra page for a `map` step.",
            "",
            "| job | calls per job | worker CPU per job | fresh-instance share |",
            "| --- | ---: | ---: | ---: |",
        ]
        e = self.r.get("e2e")
        if e:
            weft_rounds = [r for r in e["rounds"] if r["contender"] == "weft"]
            cpu_job = median([r["worker_cpu_s"] / r["jobs"] for r in weft_rounds])
            steps = e.get("workflow_steps", 0)
            map_steps = e.get("map_steps", 0)
            calls = steps + map_steps * (e["pages_per_round"] / e["jobs_per_round"] - 1)
            share = calls * extra / cpu_job
            ok = share <= TARGETS["step_overhead"]
            self.judge("per-step host overhead: fresh instance share of PDF digest job CPU",
                       f"{fresh * 1e6:.1f} µs/call", f"{reused * 1e6:.1f} µs/call (reused)", f"{share * 100:.2f}%",
                       "<= 10%", ok)  # fmt: skip
            lines.append(f"| PDF digest (e2e above) | {calls:.1f} | {cpu_job * 1000:.2f} ms | {share * 100:.2f}% |")
        o = self.r.get("orchestration")
        if o:
            weft_rounds = [r for r in o["rounds"] if r["contender"] == "weft"]
            cpu_job = median([r["worker_cpu_s"] / r["jobs"] for r in weft_rounds])
            share = 5 * extra / cpu_job
            lines.append(f"| 5 no-op steps (worst case) | 5 | {cpu_job * 1000:.2f} ms | {share * 100:.1f}% |")
        lines += ["", "The target (fresh instance <= 10% of job throughput) is judged on the PDF digest job; the "
                  "no-op job shows the worst case, where a step does nothing at all.", ""]  # fmt: skip
        self.sections.append("\n".join(lines))

    # ------------------------------------------------------------ output

    def render_chart(self, path: Path):
        if not self.chart:
            return False
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = [c[0] for c in self.chart]
        ratios = [c[1] for c in self.chart]
        targets = [c[2] for c in self.chart]
        colors = ["#2e7d32" if x >= t else "#c62828" for x, t in zip(ratios, targets)]
        fig, ax = plt.subplots(figsize=(8, 0.8 + 0.55 * len(labels)))
        ax.barh(labels, ratios, color=colors)
        ax.scatter(targets, range(len(labels)), marker="|", s=400, color="black", zorder=3, label="target")
        ax.set_xscale("log")
        ax.set_xlim(left=1)
        ax.invert_yaxis()
        ax.set_xlabel("Weft's advantage over the peer (x, log scale); black mark = target")
        for i, x in enumerate(ratios):
            ax.text(x, i, f" {x:.3g}x", va="center", fontsize=8)
        ax.set_title(f"Weft vs Celery + Redis, {self.r['meta']['date']} ({self.r['meta']['mode']} run)")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True

    def render(self, chart_rel: str | None) -> str:
        meta = self.r["meta"]
        m = meta["machine"]
        v = meta["versions"]
        out = [
            "# Benchmarks",
            "",
            "<!-- Generated by bench/run.sh from bench/results/suite.json; do not edit by hand. -->",
            "",
            "Weft against the stack users would otherwise pick, a Celery worker on a Redis broker running the "
            "same pipeline in Python, run side by side in one run with the contenders alternating. Every number "
            "here comes from the run below; nothing is edited by hand.",
            "",
            f"- Date: {meta['date']}; mode: {meta['mode']}; the comparisons below took {meta['duration_s'] / 60:.1f} min"
            + command_time(meta.get("command_seconds")),
            f"- Command: `{meta['command']}` (from a clean clone; it installs what it needs).",
            f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}; load average at the end "
            f"{m['load_avg_at_end'][0]:.1f} (the machine is shared: expect spread between runs).",
            f"- Weft: `{v['weft']}` at commit `{meta['commit']}`, release build. nats-server {v['nats-server']}; "
            f"{v['redis-server']}.",
            f"- Peer: Python {v['python']}, celery {v['celery']}, kombu {v['kombu']}, redis-py {v['redis']}, "
            f"pypdf {v['pypdf']}, langchain-text-splitters {v['langchain-text-splitters']}, presidio-analyzer "
            f"{v['presidio-analyzer']} and presidio-anonymizer {v['presidio-anonymizer']} (spaCy {v['spacy']}, "
            f"blank English pipeline), scikit-learn {v['scikit-learn']}; client nats-py {v['nats-py']}.",
            f"- Durability, equal on both sides: {meta['durability']['nats']}; Redis {meta['durability']['redis']}. "
            "Both append every write to a file and fsync about once a second.",
            f"- Celery settings: {meta['celery_settings']} (at-least-once, like Weft's worker).",
            "- Presidio is restricted to its pattern recognizers (e-mail, phone, credit card, IBAN, US SSN, IP "
            "address, date) for the entity types `pii-mask` handles; PERSON needs a spaCy NER model that is not on "
            "PyPI, so the peer does not detect names (it does less work than `pii-mask` there).",
            "",
            "## Targets",
            "",
            "| what | Weft | peer | measured | target | |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
        ]
        for what, weft, peer, ratio, target, ok in self.summary:
            out.append(f"| {what} | {weft} | {peer} | {ratio} | {target} | {met(ok)} |")
        if self.r.get("failures"):
            out += ["", "Comparisons that failed to run in this run:", ""]
            out += [f"- {name}: {why}" for name, why in self.r["failures"].items()]
        out.append("")
        if chart_rel:
            out += [f"![measured ratio over target for each comparison]({chart_rel})", ""]
        analysis = ROOT / "bench" / "e2e" / "analysis.md"
        if analysis.exists():
            out += [analysis.read_text().strip(), ""]
        out += self.sections
        for fragment, title in [("steps.md", "Step-level comparisons"), ("queue.md", "Queue throughput")]:
            path = ROOT / "bench" / "results" / fragment
            out.append(f"## {title}")
            out.append("")
            if path.exists():
                out += [f"Included verbatim from `bench/results/{fragment}`.", "", path.read_text().strip(), ""]
            else:
                out += [f"`bench/results/{fragment}` was not produced in this run.", ""]
        return "\n".join(out).rstrip() + "\n"


def command_time(seconds):
    """How long the whole `bench/run.sh` took, when it recorded it."""
    if not seconds:
        return "."
    return (
        f"; the whole command {seconds['total'] / 60:.1f} min, of which installs and builds "
        f"{seconds['installs_and_builds'] / 60:.1f} min and the step-level comparisons "
        f"{seconds['step_level'] / 60:.1f} min."
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chart", required=True)
    args = parser.parse_args()
    report = Report(json.loads(Path(args.results).read_text()))
    report.e2e()
    report.orchestration()
    report.memory()
    report.cold_start()
    report.step_overhead()
    chart = Path(args.chart).resolve()
    drawn = report.render_chart(chart)
    out = Path(args.out).resolve()
    rel = str(chart.relative_to(out.parent)) if drawn and chart.is_relative_to(out.parent) else None
    out.write_text(report.render(rel))
    print(f"wrote {out}" + (f" and {chart}" if drawn else ""))


if __name__ == "__main__":
    main()
