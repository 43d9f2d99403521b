#!/usr/bin/env python3
"""Where `weft serve`'s resident memory is, at idle and at its peak with 64
PDF digest jobs in flight: the memory comparison of bench/e2e/suite.py for
Weft alone, repeated for several rounds, with /proc/PID/smaps broken down by
mapping (see `classify`). Also times the 64-job burst, and optionally the
e2e throughput rounds (the corpus at concurrency 4, as suite.py's e2e).
Notes are in bench/results/memory.md.

Usage (from the repository root, with the suite's venv):
  target/bench-venv-e2e/bin/python bench/e2e/memory_probe.py --weft target/release/weft \
      [--rounds 3] [--serve-arg=--some-flag ...] [--throughput-rounds 3] [--json out.json]

Every server is started here on loopback and stopped when it exits; every
wait has a deadline (suite.py's helpers).
"""

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402 (the suite's servers, worker and job helpers)

MIB = 2**20


read_smaps, classify = suite.read_smaps, suite.classify


def proc_field(path: str, key: str) -> int:
    """The first number on the line of `path` that starts with `key`, or 0."""
    with open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def rollup(pid: int) -> int:
    return proc_field(f"/proc/{pid}/smaps_rollup", "Rss:") * 1024


def vm_hwm(pid: int) -> int:
    return proc_field(f"/proc/{pid}/status", "VmHWM:") * 1024


def threads(pid: int) -> int:
    return proc_field(f"/proc/{pid}/status", "Threads:")


class PeakSampler:
    """Samples RSS every 20 ms and keeps the smaps breakdown of the highest sample."""

    def __init__(self, pid: int, exe: str):
        self.pid, self.exe = pid, exe
        self.peak = 0
        self.breakdown = {}
        self.threads = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.is_set():
            try:
                rss = rollup(self.pid)
                if rss > self.peak:
                    self.peak = rss
                    self.maps = read_smaps(self.pid)
                    self.breakdown = classify(self.maps, self.exe)
                    self.threads = max(self.threads, threads(self.pid))
            except OSError:
                return
            self.stop_event.wait(0.02)

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)


def prepare_workflows(receiver, workdir: Path, workflow: Path) -> tuple[Path, str]:
    import re

    text = workflow.read_text()
    base = receiver.url.rsplit("/", 1)[0]
    text = re.sub(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?", base, text)
    out = workdir / "workflows"
    out.mkdir()
    (out / workflow.name).write_text(text)
    name = re.search(r"^name:\s*['\"]?([A-Za-z0-9_-]+)", text, re.M).group(1)
    return out, name


def start_worker(args, nats_url, workflows, concurrency, cache, logfile):
    return suite.WeftWorker(Path(args.weft).resolve(), nats_url, workflows, concurrency, cache, logfile,
                            tuple(args.serve_arg))  # fmt: skip


def memory_round(args, tag, workdir, workflows, name, cache, pdf) -> dict:
    server = suite.NatsServer(workdir)
    try:
        worker = start_worker(args, server.url, workflows, args.in_flight, cache, workdir / f"{tag}.log")
        try:
            worker.wait_ready(server.url)
            time.sleep(1.0)
            pid = worker.proc.pid
            exe = str(Path(args.weft).resolve())
            idle_rss = rollup(pid)
            idle_maps = read_smaps(pid)
            idle = classify(idle_maps, exe)
            idle_threads = threads(pid)
            sampler = PeakSampler(pid, exe)
            jobs = [(f"{tag}-{i}", pdf, False) for i in range(args.in_flight)]
            run = asyncio.run(suite.weft_run_jobs(server.url, name, jobs, 600))
            sampler.stop()
            seconds = max(t for t, _ in run["done"].values()) - run["started"]
            ok = sum(1 for _, s in run["done"].values() if s == "succeeded")
            hwm = vm_hwm(pid)
            if args.dump_maps:
                dump = [{**m, "start": hex(m["start"]), "size": m["end"] - m["start"], "end": hex(m["end"])}
                        for m in sampler.maps]  # fmt: skip
                idle_dump = [{**m, "start": hex(m["start"]), "size": m["end"] - m["start"], "end": hex(m["end"])}
                             for m in idle_maps]  # fmt: skip
                Path(args.dump_maps).write_text(json.dumps({"idle": idle_dump, "peak": dump}, indent=1))
            time.sleep(1.0)
            after_rss = rollup(pid)
            after = classify(read_smaps(pid), exe)
        finally:
            worker.stop()
    finally:
        server.stop()
    return {"tag": tag, "ok": ok, "seconds": seconds, "idle_rss": idle_rss, "idle": idle,
            "idle_threads": idle_threads, "peak_rss": sampler.peak, "peak": sampler.breakdown,
            "peak_threads": sampler.threads, "vmhwm": hwm, "after_rss": after_rss, "after": after}  # fmt: skip


def throughput_round(args, tag, workdir, workflows, name, cache, docs) -> dict:
    server = suite.NatsServer(workdir)
    try:
        worker = start_worker(args, server.url, workflows, 4, cache, workdir / f"{tag}.log")
        try:
            worker.wait_ready(server.url)
            jobs = [(f"{tag}-{i}", data, False) for i, data in enumerate(docs)]
            run = asyncio.run(suite.weft_run_jobs(server.url, name, jobs, 600))
            hwm = vm_hwm(worker.proc.pid)
        finally:
            worker.stop()
    finally:
        server.stop()
    seconds = max(t for t, _ in run["done"].values()) - run["started"]
    ok = sum(1 for _, s in run["done"].values() if s == "succeeded")
    return {"tag": tag, "jobs": len(docs), "ok": ok, "seconds": seconds, "jobs_per_s": len(docs) / seconds,
            "vmhwm": hwm}  # fmt: skip


def table(rounds: list[dict], key: str) -> list[str]:
    kinds = sorted({k for r in rounds for k in r[key]}, key=lambda k: -statistics.median(r[key].get(k, 0) for r in rounds))
    lines = []
    for kind in kinds:
        values = [r[key].get(kind, 0) / MIB for r in rounds]
        lines.append(f"  {kind:<62} {statistics.median(values):7.1f} MiB   ({' / '.join(f'{v:.1f}' for v in values)})")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weft", required=True)
    parser.add_argument("--workflow", default=str(suite.E2E / "workflows" / "pdf-digest-webhook.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--document", default="pdflatex-4-pages.pdf")
    parser.add_argument("--throughput-rounds", type=int, default=0)
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `weft serve` argument (repeatable)")
    parser.add_argument("--cache-dir", default=str(suite.ROOT / "target" / "bench-cache"))
    parser.add_argument("--json")
    parser.add_argument("--dump-maps", help="write the last round's raw idle and peak mappings (JSON) here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="weft-memprobe-"))
    cache = Path(args.cache_dir).resolve()
    receiver = suite.NotifyReceiver()
    try:
        workflows, name = prepare_workflows(receiver, workdir, Path(args.workflow).resolve())
        pdf = (suite.CORPUS / args.document).read_bytes()
        rounds = []
        for r in range(args.rounds):
            result = memory_round(args, f"mem-r{r}", workdir, workflows, name, cache, pdf)
            result["posts"] = receiver.take()
            suite.log(f"memory round {r}: idle {result['idle_rss'] / MIB:.1f} MiB, peak {result['peak_rss'] / MIB:.1f} "
                      f"MiB (VmHWM {result['vmhwm'] / MIB:.1f}), after {result['after_rss'] / MIB:.1f} MiB, "
                      f"{result['ok']}/{args.in_flight} ok in {result['seconds']:.2f}s, {result['posts']} POSTs, "
                      f"threads {result['idle_threads']} idle / {result['peak_threads']} peak")  # fmt: skip
            rounds.append(result)
        summary = {"serve_args": args.serve_arg, "rounds": rounds}
        med = lambda key: statistics.median(r[key] for r in rounds) / MIB  # noqa: E731
        print(f"serve args: {args.serve_arg or '(none)'}; {args.rounds} rounds of {args.in_flight} x {args.document}")
        print(f"median idle RSS {med('idle_rss'):.1f} MiB, peak RSS (sampled) {med('peak_rss'):.1f} MiB, "
              f"VmHWM {med('vmhwm'):.1f} MiB, 1 s after {med('after_rss'):.1f} MiB, "
              f"burst {statistics.median(r['seconds'] for r in rounds):.2f} s")  # fmt: skip
        print("idle breakdown (median, rounds):")
        print("\n".join(table(rounds, "idle")))
        print("peak breakdown (median, rounds):")
        print("\n".join(table(rounds, "peak")))
        if args.throughput_rounds:
            # The documents the suite's e2e comparison digests (its preflight
            # leaves out those either side cannot read), from its last results.
            recorded = json.loads((suite.ROOT / "bench" / "results" / "suite.json").read_text())
            docs = [(suite.CORPUS / d["name"]).read_bytes() for d in recorded["e2e"]["documents"]]
            tp = []
            for r in range(args.throughput_rounds):
                result = throughput_round(args, f"tp-r{r}", workdir, workflows, name, cache, docs)
                receiver.take()
                suite.log(f"throughput round {r}: {result['jobs_per_s']:.2f} jobs/s ({result['ok']}/{result['jobs']} ok), "
                          f"VmHWM {result['vmhwm'] / MIB:.1f} MiB")  # fmt: skip
                tp.append(result)
            summary["throughput"] = tp
            print(f"throughput (concurrency 4, {len(docs)} corpus PDFs, as suite.py e2e): median "
                  f"{statistics.median(r['jobs_per_s'] for r in tp):.2f} jobs/s "
                  f"({' / '.join(format(r['jobs_per_s'], '.2f') for r in tp)})")  # fmt: skip
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        suite.PROCS.stop_all()
        receiver.close()


if __name__ == "__main__":
    main()
