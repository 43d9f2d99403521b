#!/usr/bin/env python3
"""Side-by-side benchmarks of `weft serve` against a Celery + Redis worker
(bench/e2e/peer.py), alternating the contenders round by round, each round on
freshly started servers. Writes one results JSON (bench/results/suite.json);
bench/e2e/report.py turns it into BENCHMARKS.md.

Comparisons:
  e2e            PDF digest jobs/s through the queue
  orchestration  5 no-op steps per job vs a 5-task Celery chain
  memory         peak RSS and PSS with 64 jobs in flight
  cold_start     process start to first job finished, pre-queued job
  step_overhead  fresh instance per step call vs one reused instance
                 (criterion, host/benches/step_overhead.rs), related to the
                 CPU time a job costs

Every server is started by this script on loopback and killed when it exits;
every wait has a deadline.

Usage: suite.py --weft target/release/weft --workflow workflows/pdf-digest.yaml
                --out bench/results/suite.json [--quick]
"""

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nats
import psutil
import redis as redis_py
from celery import Celery, chain

ROOT = Path(__file__).resolve().parents[2]
E2E = Path(__file__).resolve().parent
VENV_PYTHON = sys.executable
CORPUS = ROOT.parent / "shared" / "corpus" / "pdf"
if not CORPUS.is_dir():
    CORPUS = Path("/work/shared/corpus/pdf")
SAMPLE_PDF = ROOT / "workflows" / "samples" / "sample.pdf"
NOOP_WASM = ROOT / "target" / "wasm" / "wasm32-wasip2" / "release" / "noop.wasm"

# Durability, equal on both sides: every write goes to an append-only file and
# is fsynced about once a second.
NATS_SYNC_INTERVAL = "1s"
REDIS_APPENDFSYNC = "everysec"


def log(message: str) -> None:
    print(f"[suite {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Processes:
    """Every process this script starts, each in its own process group, so
    it and its children (Celery's pool) can be stopped by its own id."""

    def __init__(self):
        self.running: list[subprocess.Popen] = []

    def start(self, argv, log_path: Path, **kwargs) -> subprocess.Popen:
        out = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        out.close()
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 10.0, sig=signal.SIGTERM) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (pool children) is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc, grace=3)


PROCS = Processes()


class NotifyReceiver:
    """Loopback HTTP server counting the notification POSTs of both sides."""

    def __init__(self):
        receiver = self
        self.count = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                with receiver.lock:
                    receiver.count += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> int:
        with self.lock:
            count, self.count = self.count, 0
        return count

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- servers


class NatsServer:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        store = workdir / f"nats-{self.port}"
        store.mkdir(parents=True)
        conf = store / "nats.conf"
        conf.write_text(
            f'listen: 127.0.0.1:{self.port}\nmax_payload: 8MB\n'
            f'jetstream {{ store_dir: "{store}", sync_interval: "{NATS_SYNC_INTERVAL}" }}\n'
        )
        self.proc = PROCS.start([shutil.which("nats-server") or "nats-server", "-c", str(conf)], store / "log")
        wait_until(lambda: _port_open(self.port), 15, "nats-server to listen")

    def stop(self):
        PROCS.stop(self.proc)


class RedisServer:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        data = workdir / f"redis-{self.port}"
        data.mkdir(parents=True)
        argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
                "--appendfsync", REDIS_APPENDFSYNC, "--save", "", "--daemonize", "no"]  # fmt: skip
        self.proc = PROCS.start(argv, data / "log")
        self.client = redis_py.Redis(host="127.0.0.1", port=self.port)

        def ping():
            try:
                return self.client.ping()
            except redis_py.ConnectionError:
                return False

        wait_until(ping, 15, "redis-server to answer PING")

    def stop(self):
        self.client.close()
        PROCS.stop(self.proc)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- contenders


class WeftWorker:
    def __init__(self, weft: Path, nats_url: str, workflows: Path, concurrency: int, cache: Path, logfile: Path,
                 extra_args: tuple[str, ...] = ()):  # fmt: skip
        argv = [str(weft), "--cache-dir", str(cache), "serve", "--nats", nats_url, "--workflows", str(workflows),
                "--concurrency", str(concurrency), *extra_args]  # fmt: skip
        self.started = time.monotonic()
        self.proc = PROCS.start(argv, logfile)
        self.logfile = logfile

    def wait_ready(self, nats_url: str, timeout: float = 60):
        async def consumer_exists():
            nc = await nats.connect(nats_url, connect_timeout=2)
            try:
                js = nc.jetstream()
                await js.consumer_info("WEFT_JOBS", "weft-workers")
                return True
            except Exception:  # noqa: BLE001 (not there yet)
                return False
            finally:
                await nc.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"weft serve exited with {self.proc.returncode}; see {self.logfile}")
            return asyncio.run(consumer_exists())

        wait_until(ready, timeout, "weft serve to create its consumer", interval=0.1)

    def stop(self):
        PROCS.stop(self.proc, grace=15, sig=signal.SIGTERM)


class CeleryWorker:
    def __init__(self, broker: str, pool: str, concurrency: int, notify_url: str, logfile: Path):
        env = dict(os.environ, BROKER_URL=broker, NOTIFY_URL=notify_url, PYTHONDONTWRITEBYTECODE="1")
        argv = [VENV_PYTHON, "-m", "celery", "-A", "peer", "worker", "--pool", pool, "--concurrency",
                str(concurrency), "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "--hostname", f"peer-{pool}@bench"]  # fmt: skip
        self.started = time.monotonic()
        self.logfile = logfile
        self.proc = PROCS.start(argv, logfile, cwd=str(E2E), env=env)

    def wait_ready(self, timeout: float = 120):
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {self.proc.returncode}; see {self.logfile}")
            return b" ready." in self.logfile.read_bytes()

        wait_until(ready, timeout, "the celery worker to be ready", interval=0.05)

    def stop(self):
        PROCS.stop(self.proc, grace=20, sig=signal.SIGTERM)


def celery_client(broker: str) -> Celery:
    app = Celery("client", broker=broker, backend=broker)
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    return app


def wait_celery_results(client: redis_py.Redis, task_ids: list[str], timeout: float) -> dict:
    """Polls the Redis result backend until every task has a final state.
    Returns {task_id: (monotonic time seen, status)}."""
    pending = set(task_ids)
    seen = {}
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(task_ids)} celery tasks unfinished after {timeout:.0f}s")
        batch = list(pending)
        now = time.monotonic()
        for task_id, raw in zip(batch, client.mget([f"celery-task-meta-{t}" for t in batch])):
            if raw is None:
                continue
            status = json.loads(raw).get("status")
            if status in ("SUCCESS", "FAILURE"):
                seen[task_id] = (now, status)
                pending.discard(task_id)
        time.sleep(0.01)
    return seen


async def publish_weft_jobs(nc, workflow: str, jobs: list[tuple[str, bytes, bool]]):
    js = nc.jetstream()
    for job_id, data, is_text in jobs:
        job_input = {"text": data.decode()} if is_text else {"base64": base64.b64encode(data).decode()}
        body = json.dumps({"job_id": job_id, "input": job_input}).encode()
        await js.publish(f"weft.jobs.{workflow}", body, headers={"Nats-Msg-Id": job_id}, timeout=30)


async def weft_run_jobs(nats_url: str, workflow: str, jobs, timeout: float, before_publish=None) -> dict:
    """Subscribes to the workflow's result events, publishes the jobs, waits
    for every one. Returns {job_id: (monotonic time, state)} and the publish start."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=3)
    done = {}
    wanted = {job_id for job_id, _, _ in jobs}
    finished = asyncio.Event()

    async def on_result(msg):
        event = json.loads(msg.data)
        if event.get("job_id") in wanted and event["job_id"] not in done:
            done[event["job_id"]] = (time.monotonic(), event.get("state"))
            if len(done) == len(wanted):
                finished.set()

    await nc.subscribe(f"weft.results.{workflow}", cb=on_result)
    await nc.flush()
    if before_publish:
        before_publish()
    started = time.monotonic()
    await publish_weft_jobs(nc, workflow, jobs)
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"{len(wanted) - len(done)} of {len(wanted)} weft jobs unfinished after {timeout:.0f}s")
    finally:
        await nc.close()
    return {"done": done, "started": started}


def cpu_seconds(pid: int) -> float:
    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total
    except psutil.Error:
        return 0.0


# ---------------------------------------------------------------- memory sampling


def _smaps_rollup(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def read_smaps(pid: int) -> list[dict]:
    """The process's mappings, each with its address range, permissions,
    name and Rss/Private_Dirty in bytes."""
    maps = []
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                current = {"start": start, "end": end, "perms": fields[1],
                           "name": fields[5] if len(fields) > 5 else "", "rss": 0, "anon": 0}  # fmt: skip
                maps.append(current)
            elif current is not None and fields[0] == "Rss:":
                current["rss"] = int(fields[1]) * 1024
            elif current is not None and fields[0] == "Anonymous:":
                current["anon"] = int(fields[1]) * 1024
    return maps


def classify(maps: list[dict], exe: str) -> dict[str, int]:
    """RSS by kind. Wasmtime's pooling allocator reserves one huge range for
    linear memories (4 GiB + guard per slot, some slots backed by a
    `memfd:wasm-memory-image` copy-on-write image of the module's data);
    anonymous mappings are told apart by the run of adjacent mappings they
    sit in: the pool's table and fiber-stack reservations (hundreds of MiB),
    glibc's per-thread malloc arenas (64 MiB-aligned runs), thread stacks
    (a guard page then up to 8 MiB), and compiled guest code (anonymous
    executable/read-only mappings, when loaded from bytes)."""
    kinds: dict[str, int] = {}

    def add(kind, n):
        if n:
            kinds[kind] = kinds.get(kind, 0) + n

    def is_anon(m):
        return m["name"] == "" or m["name"].startswith("[anon")

    big = [m for m in maps if is_anon(m) and m["perms"] == "---p" and m["end"] - m["start"] >= 2**30]
    pool = (min(m["start"] for m in big), max(m["end"] for m in big)) if big else (0, 0)
    in_pool = lambda m: pool[0] <= m["start"] and m["end"] <= pool[1]  # noqa: E731
    for m in maps:
        if in_pool(m):
            add("wasm linear memories: private (dirty) pages", m["anon"])
            add("wasm linear memories: shared image pages", m["rss"] - m["anon"])
    # glibc's per-thread arenas: 64 MiB-aligned reservations, read-write from the start.
    arena = 64 * 2**20
    bases = {m["start"] for m in maps if is_anon(m) and m["start"] % arena == 0 and m["perms"] == "rw-p"}
    in_arena = lambda m: (m["start"] // arena) * arena in bases and m["end"] <= (m["start"] // arena + 1) * arena  # noqa: E731
    for m in maps:
        if is_anon(m) and not in_pool(m) and in_arena(m):
            add("malloc arenas of the worker threads", m["rss"])
    # Runs of adjacent anonymous mappings outside the memory pool and arenas.
    anon = sorted((m for m in maps if is_anon(m) and not in_pool(m) and not in_arena(m)), key=lambda m: m["start"])
    runs, run = [], []
    for m in anon:
        if run and run[-1]["end"] == m["start"]:
            run.append(m)
        else:
            if run:
                runs.append(run)
            run = [m]
    if run:
        runs.append(run)
    for run in runs:
        size = run[-1]["end"] - run[0]["start"]
        rss = sum(m["rss"] for m in run)
        perms = {m["perms"] for m in run}
        if any("x" in p for p in perms) or (perms <= {"r--p", "r-xp"}):
            add("compiled guest code (anonymous copy)", rss)
        elif size >= 256 * 2**20:
            add("wasm pool: tables and fiber stacks", rss)
        elif run[0]["perms"] == "---p" and len(run) == 2 and size <= 9 * 2**20:
            add("thread stacks", rss)
        else:
            add("other anonymous (large malloc chunks, buffers)", rss)
    for m in maps:
        name = m["name"]
        if is_anon(m) or in_pool(m):
            continue
        if name == exe:
            if "x" in m["perms"]:
                add("weft executable: text", m["rss"])
            elif m["perms"].startswith("r--") and m["anon"] == 0:
                add("weft executable: rodata (incl. embedded plugins)", m["rss"])
            else:
                add("weft executable: data, relro, bss", m["rss"])
        elif name == "[heap]":
            add("malloc main heap ([heap])", m["rss"])
        elif name == "[stack]":
            add("main thread stack", m["rss"])
        elif name.endswith(".cwasm"):
            add("compiled guest code (mapped from the cache)", m["rss"])
        elif name.startswith("/"):
            add("shared libraries", m["rss"])
        else:
            add(f"other ({name})", m["rss"])
    return kinds


def smaps_breakdown(pid: int, exe: str = "") -> dict:
    """Where one process's resident memory is, by kind of mapping (see
    `classify`); `exe` is the path of the process's executable."""
    try:
        return classify(read_smaps(pid), exe)
    except OSError:
        return {}


class MemorySampler:
    """Samples the summed RSS and PSS of a process tree every 50 ms."""

    def __init__(self, pid: int, breakdown: bool = False, exe: str = ""):
        self.pid = pid
        self.exe = exe
        self.breakdown = breakdown
        self.peak_breakdown = {}
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def sample(self) -> tuple[int, int, int]:
        try:
            root = psutil.Process(self.pid)
            pids = [self.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.Error:
            return 0, 0, 0
        rss = pss = 0
        for pid in pids:
            r, p = _smaps_rollup(pid)
            rss += r
            pss += p
        return rss, pss, len(pids)

    def _run(self):
        while not self.stop_event.is_set():
            rss, pss, n = self.sample()
            if self.breakdown and rss > self.peak_rss:
                self.peak_breakdown = smaps_breakdown(self.pid, self.exe)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_processes = max(self.peak_processes, n)
            self.stop_event.wait(0.05)

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=5)

    def high_water_marks(self) -> int:
        """Sum over the tree of each process's own peak RSS (VmHWM): exact for
        one process, an upper bound for a pool of processes."""
        try:
            root = psutil.Process(self.pid)
            pids = [self.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        return total


# ---------------------------------------------------------------- the suite


class Suite:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.weft = Path(args.weft).resolve()
        self.workdir = Path(tempfile.mkdtemp(prefix="weft-suite-"))
        self.cache = Path(args.cache_dir).resolve()
        self.cache.mkdir(parents=True, exist_ok=True)
        self.logs = self.workdir / "logs"
        self.logs.mkdir()
        self.receiver = NotifyReceiver()
        self.workflow_src = Path(args.workflow).resolve()
        self.workflows = self.workdir / "workflows"
        self.workflows.mkdir()
        self.workflow_name, self.has_notify, self.workflow_steps, self.map_steps = self._prepare_workflows()
        self.results = {}
        # The peer notifies only when the workflow does: equal work on both sides.
        self.peer_notify_url = self.receiver.url if self.has_notify else ""

    def _prepare_workflows(self):
        """Copies the digest workflow (pointing any loopback URL at the
        receiver) and writes the 5-step no-op workflow."""
        text = self.workflow_src.read_text()
        base = self.receiver.url.rsplit("/", 1)[0]
        text = re.sub(r"https?://(?:127\.0\.0\.1|localhost|\[::1\])(?::\d+)?", base, text)
        (self.workflows / self.workflow_src.name).write_text(text)
        name = re.search(r"^name:\s*['\"]?([A-Za-z0-9_-]+)", text, re.M).group(1)
        steps = re.findall(r"^\s*-\s*id:\s*([A-Za-z0-9_-]+)", text, re.M)
        plugins = re.findall(r"^\s*plugin:\s*([A-Za-z0-9_./-]+)", text, re.M)
        map_steps = len(re.findall(r"^\s*map:", text, re.M))
        has_notify = any("notify" in p for p in plugins) or "notify" in steps
        noop = ["name: noop5", "version: '1'", "steps:"]
        for i in range(5):
            noop += [f"  - id: s{i}", f"    plugin: {NOOP_WASM}"]
            if i:
                noop.append(f"    needs: [s{i - 1}]")
        (self.workflows / "noop5.yaml").write_text("\n".join(noop) + "\n")
        return name, has_notify, len(steps), map_steps

    # ------------------------------------------------------------ inputs

    def preflight(self):
        """Which corpus PDFs both sides digest successfully; page counts."""
        docs, excluded = [], {}
        import io
        import logging

        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)

        for path in sorted(CORPUS.glob("*.pdf")):
            data = path.read_bytes()
            reasons = []
            try:
                # Opening and counting pages surfaces pypdf's refusals
                # (encrypted, damaged) without extracting every page here.
                pages = len(PdfReader(io.BytesIO(data)).pages)
            except Exception as error:  # noqa: BLE001 (recorded as the reason)
                pages = 0
                reasons.append(f"pypdf: {type(error).__name__}")
            run = subprocess.run(
                [str(self.weft), "--cache-dir", str(self.cache), "run", str(self.workflows / self.workflow_src.name),
                 "--input", str(path)],  # fmt: skip
                capture_output=True,
                timeout=300,
            )
            if run.returncode != 0:
                message = run.stderr.decode(errors="replace").strip().splitlines()
                last = message[-1] if message else f"exit {run.returncode}"
                reasons.append("weft: " + last.rsplit(" failed: ", 1)[-1][:160])
            if reasons:
                excluded[path.name] = "; ".join(reasons)
            else:
                docs.append({"name": path.name, "bytes": len(data), "pages": pages})
        self.receiver.take()
        return docs, excluded

    # ------------------------------------------------------------ e2e

    def e2e(self):
        concurrency = 4
        docs, excluded = self.preflight()
        if not docs:
            raise RuntimeError(f"no corpus PDF passed the preflight; first reasons: {list(excluded.items())[:2]}")
        if self.quick:
            docs = [d for d in docs if d["bytes"] < 100_000]
        passes = 1
        rounds = 2 if self.quick else 3
        job_docs = [d for _ in range(passes) for d in docs]
        data = {d["name"]: (CORPUS / d["name"]).read_bytes() for d in docs}
        log(f"e2e: {len(job_docs)} jobs per round ({len(docs)} documents x {passes}), {rounds} rounds")
        out = {"workflow": str(self.workflow_src.relative_to(ROOT)) if self.workflow_src.is_relative_to(ROOT)
               else str(self.workflow_src), "workflow_name": self.workflow_name, "notify": self.has_notify,
               "workflow_steps": self.workflow_steps, "map_steps": self.map_steps,
               "concurrency": concurrency, "jobs_per_round": len(job_docs),
               "pages_per_round": sum(d["pages"] for d in job_docs), "documents": docs, "excluded": excluded,
               "rounds": []}  # fmt: skip
        for r in range(rounds):
            order = ["weft", "celery"] if r % 2 == 0 else ["celery", "weft"]
            for contender in order:
                tag = f"e2e-r{r}-{contender}"
                jobs = [(f"{tag}-{i}", data[d["name"]], False) for i, d in enumerate(job_docs)]
                if contender == "weft":
                    result = self._weft_round(tag, self.workflow_name, jobs, concurrency, timeout=600)
                else:
                    result = self._celery_digest_round(tag, jobs, concurrency, timeout=900)
                result.update(round=r, contender=contender)
                result["notify_posts"] = self.receiver.take()
                result["pages_per_s"] = out["pages_per_round"] / result["seconds"]
                log(f"  {tag}: {result['jobs_per_s']:.2f} jobs/s, {result['ok']} ok, {result['failed']} failed, "
                    f"{result['notify_posts']} POSTs")
                out["rounds"].append(result)
        self.results["e2e"] = out

    def _weft_round(self, tag, workflow, jobs, concurrency, timeout):
        server = NatsServer(self.workdir)
        try:
            worker = WeftWorker(self.weft, server.url, self.workflows, concurrency, self.cache, self.logs / f"{tag}.log")
            try:
                worker.wait_ready(server.url)
                cpu_before = cpu_seconds(worker.proc.pid)
                run = asyncio.run(weft_run_jobs(server.url, workflow, jobs, timeout))
                cpu = cpu_seconds(worker.proc.pid) - cpu_before
            finally:
                worker.stop()
        finally:
            server.stop()
        times = [t for t, _ in run["done"].values()]
        seconds = max(times) - run["started"]
        ok = sum(1 for _, state in run["done"].values() if state == "succeeded")
        return {"jobs": len(jobs), "ok": ok, "failed": len(jobs) - ok, "seconds": seconds,
                "jobs_per_s": len(jobs) / seconds, "worker_cpu_s": cpu}  # fmt: skip

    def _celery_digest_round(self, tag, jobs, concurrency, timeout):
        def submit(app):
            return [app.send_task("peer.digest", args=[job_id, base64.b64encode(pdf).decode()], task_id=job_id).id
                    for job_id, pdf, _ in jobs]  # fmt: skip

        return self._celery_round(tag, concurrency, self.peer_notify_url, submit, timeout)

    def _celery_round(self, tag, concurrency, notify_url, submit, timeout):
        """One round on a fresh Redis and a warm prefork worker: `submit(app)` sends the jobs and returns the ids
        of the results to wait for; the clock runs from the first send to the last result."""
        server = RedisServer(self.workdir)
        try:
            worker = CeleryWorker(server.url, "prefork", concurrency, notify_url, self.logs / f"{tag}.log")
            try:
                worker.wait_ready()
                app = celery_client(server.url)
                cpu_before = cpu_seconds(worker.proc.pid)
                started = time.monotonic()
                ids = submit(app)
                done = wait_celery_results(server.client, ids, timeout)
                cpu = cpu_seconds(worker.proc.pid) - cpu_before
            finally:
                worker.stop()
        finally:
            server.stop()
        seconds = max(t for t, _ in done.values()) - started
        ok = sum(1 for _, status in done.values() if status == "SUCCESS")
        return {"jobs": len(ids), "ok": ok, "failed": len(ids) - ok, "seconds": seconds,
                "jobs_per_s": len(ids) / seconds, "worker_cpu_s": cpu}  # fmt: skip

    # ------------------------------------------------------------ orchestration

    def orchestration(self):
        concurrency = 8
        rounds = 2 if self.quick else 3
        weft_jobs = 1000 if self.quick else 2000
        celery_jobs = 60 if self.quick else 150
        out = {"concurrency": concurrency, "weft_jobs": weft_jobs, "celery_jobs": celery_jobs, "rounds": []}
        log(f"orchestration: weft {weft_jobs} jobs, celery {celery_jobs} chains per round, {rounds} rounds")
        for r in range(rounds):
            order = ["weft", "celery"] if r % 2 == 0 else ["celery", "weft"]
            for contender in order:
                tag = f"noop-r{r}-{contender}"
                if contender == "weft":
                    jobs = [(f"{tag}-{i}", b"x", True) for i in range(weft_jobs)]
                    result = self._weft_round(tag, "noop5", jobs, concurrency, timeout=300)
                else:
                    result = self._celery_chain_round(tag, celery_jobs, concurrency, timeout=300)
                result.update(round=r, contender=contender)
                log(f"  {tag}: {result['jobs_per_s']:.1f} jobs/s")
                out["rounds"].append(result)
        self.results["orchestration"] = out

    def _celery_chain_round(self, tag, count, concurrency, timeout):
        def submit(app):
            chains = ([app.signature("peer.noop", args=("x",))] + [app.signature("peer.noop") for _ in range(4)]
                      for _ in range(count))  # fmt: skip
            return [chain(*steps).apply_async().id for steps in chains]

        return self._celery_round(tag, concurrency, "", submit, timeout)

    # ------------------------------------------------------------ memory

    def memory(self):
        in_flight = 64
        doc = "pdflatex-4-pages.pdf" if not self.quick else "minimal-document.pdf"
        pdf = (CORPUS / doc).read_bytes()
        # Weft lets as many steps compute at once as there are cores; the
        # other jobs wait in the worker without a sandbox (bench/results/memory.md).
        weft_args = ["--compute-slots", str(os.cpu_count() or 1)]
        out = {"in_flight": in_flight, "document": doc, "weft_serve_args": weft_args, "rounds": []}
        log(f"memory: {in_flight} jobs of {doc} in flight")
        # Starting 64 prefork processes takes minutes on 2 busy cores: the
        # quick (smoke) run measures Weft and the threads pool only.
        contenders = ["weft", "celery-threads"] if self.quick else ["weft", "celery-prefork", "celery-threads"]
        for contender in contenders:
            tag = f"mem-{contender}"
            jobs = [(f"{tag}-{i}", pdf, False) for i in range(in_flight)]
            if contender == "weft":
                server = NatsServer(self.workdir)
                try:
                    worker = WeftWorker(self.weft, server.url, self.workflows, in_flight, self.cache,
                                        self.logs / f"{tag}.log", tuple(weft_args))  # fmt: skip
                    try:
                        worker.wait_ready(server.url)
                        idle = MemorySampler(worker.proc.pid).sample()
                        idle_breakdown = smaps_breakdown(worker.proc.pid, str(self.weft))
                        sampler = MemorySampler(worker.proc.pid, breakdown=True, exe=str(self.weft))
                        run = asyncio.run(weft_run_jobs(server.url, self.workflow_name, jobs, 600))
                        sampler.stop()
                        hwm = sampler.high_water_marks()
                        ok = sum(1 for _, s in run["done"].values() if s == "succeeded")
                    finally:
                        worker.stop()
                finally:
                    server.stop()
            else:
                pool = contender.split("-")[1]
                server = RedisServer(self.workdir)
                try:
                    worker = CeleryWorker(server.url, pool, in_flight, self.peer_notify_url, self.logs / f"{tag}.log")
                    try:
                        worker.wait_ready(timeout=300)
                        time.sleep(1.0)  # let the pool settle after "ready"
                        idle = MemorySampler(worker.proc.pid).sample()
                        idle_breakdown = {}
                        sampler = MemorySampler(worker.proc.pid)
                        app = celery_client(server.url)
                        ids = [app.send_task("peer.digest", args=[j, base64.b64encode(p).decode()], task_id=j).id
                               for j, p, _ in jobs]  # fmt: skip
                        done = wait_celery_results(server.client, ids, 900)
                        sampler.stop()
                        hwm = sampler.high_water_marks()
                        ok = sum(1 for _, s in done.values() if s == "SUCCESS")
                    finally:
                        worker.stop()
                finally:
                    server.stop()
            self.receiver.take()
            result = {"contender": contender, "jobs": in_flight, "ok": ok, "idle_rss": idle[0], "idle_pss": idle[1],
                      "peak_rss": sampler.peak_rss, "peak_pss": sampler.peak_pss, "vmhwm_sum": hwm,
                      "processes": sampler.peak_processes, "peak_breakdown": sampler.peak_breakdown,
                      "idle_breakdown": idle_breakdown}  # fmt: skip
            log(f"  {tag}: peak RSS {sampler.peak_rss / 2**20:.0f} MiB, PSS {sampler.peak_pss / 2**20:.0f} MiB, "
                f"{sampler.peak_processes} processes")
            out["rounds"].append(result)
        self.results["memory"] = out

    # ------------------------------------------------------------ cold start

    def cold_start(self):
        rounds = 2 if self.quick else 3
        concurrency = 4
        pdf = SAMPLE_PDF.read_bytes()
        out = {"rounds": [], "document": str(SAMPLE_PDF.relative_to(ROOT)), "concurrency": concurrency}
        log(f"cold start: {rounds} rounds")
        server = NatsServer(self.workdir)
        redis_server = RedisServer(self.workdir)
        try:
            # Create the topology and warm the compile cache once.
            warm = WeftWorker(self.weft, server.url, self.workflows, concurrency, self.cache, self.logs / "cold-warm.log")
            try:
                warm.wait_ready(server.url)
                asyncio.run(weft_run_jobs(server.url, self.workflow_name, [("cold-warmup", pdf, False)], 120))
            finally:
                warm.stop()
            app = celery_client(redis_server.url)
            for r in range(rounds):
                order = ["weft", "celery"] if r % 2 == 0 else ["celery", "weft"]
                for contender in order:
                    tag = f"cold-r{r}-{contender}"
                    if contender == "weft":
                        box = {}

                        def spawn(box=box, tag=tag):
                            box["worker"] = WeftWorker(self.weft, server.url, self.workflows, concurrency, self.cache,
                                                       self.logs / f"{tag}.log")  # fmt: skip

                        # The job is queued first; the clock starts at spawn.
                        nc_jobs = [(tag, pdf, False)]
                        asyncio.run(_publish_only(server.url, self.workflow_name, nc_jobs))
                        run = asyncio.run(_wait_results(server.url, self.workflow_name, {tag}, 120, spawn))
                        seconds = run["done"][tag][0] - box["worker"].started
                        box["worker"].stop()
                    else:
                        app.send_task("peer.digest", args=[tag, base64.b64encode(pdf).decode()], task_id=tag)
                        worker = CeleryWorker(redis_server.url, "prefork", concurrency, self.peer_notify_url,
                                              self.logs / f"{tag}.log")  # fmt: skip
                        try:
                            done = wait_celery_results(redis_server.client, [tag], 120)
                        finally:
                            worker.stop()
                        seconds = done[tag][0] - worker.started
                    self.receiver.take()
                    log(f"  {tag}: {seconds * 1000:.0f} ms")
                    out["rounds"].append({"round": r, "contender": contender, "seconds": seconds})
        finally:
            redis_server.stop()
            server.stop()
        self.results["cold_start"] = out

    # ------------------------------------------------------------ step overhead

    def step_overhead(self):
        log("step overhead: cargo bench -p weft --bench step_overhead")
        argv = ["cargo", "bench", "-p", "weft", "--bench", "step_overhead", "--", "step_attempt"]
        if self.quick:
            argv += ["--warm-up-time", "1", "--measurement-time", "2", "--sample-size", "20"]
        else:
            argv += ["--warm-up-time", "2", "--measurement-time", "5", "--sample-size", "50"]
        with open(self.logs / "step_overhead.log", "wb") as f:
            subprocess.run(["nice", "-n", "5", *argv], cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True,
                           timeout=900)  # fmt: skip
        variants = {}
        for name in ["pooling", "on_demand", "bare_fresh", "bare_reused"]:
            est = json.loads((ROOT / "target/criterion/step_attempt" / name / "new/estimates.json").read_text())
            median = est["median"]
            variants[name] = {"median_ns": median["point_estimate"],
                              "ci_low_ns": median["confidence_interval"]["lower_bound"],
                              "ci_high_ns": median["confidence_interval"]["upper_bound"]}  # fmt: skip
            log(f"  {name}: {median['point_estimate'] / 1000:.1f} µs")
        self.results["step_overhead"] = {"command": " ".join(argv), "variants": variants}

    # ------------------------------------------------------------ meta

    def meta(self, started: float):
        def version(argv):
            try:
                return subprocess.run(argv, capture_output=True, timeout=30, text=True).stdout.strip().splitlines()[0]
            except (OSError, IndexError, subprocess.TimeoutExpired):
                return "unknown"

        from importlib.metadata import version as pkg

        cpu = "unknown"
        with contextlib.suppress(OSError):
            for line in open("/proc/cpuinfo"):
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        git = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "bench/run.sh" + (" --quick" if self.quick else ""),
            "mode": "quick" if self.quick else "full",
            "duration_s": time.monotonic() - started,
            "machine": {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30),
                        "os": platform.platform(), "load_avg_at_end": os.getloadavg()},  # fmt: skip
            "commit": git + ("+dirty" if dirty else ""),
            "versions": {
                "weft": version([str(self.weft), "--version"]),
                "nats-server": version(["nats-server", "--version"]).split()[-1],
                "redis-server": version(["redis-server", "--version"]).split(" sha=")[0],
                "python": platform.python_version(),
                **{name: pkg(name) for name in ["celery", "kombu", "redis", "pypdf", "langchain-text-splitters",
                                                "presidio-analyzer", "presidio-anonymizer", "spacy", "scikit-learn",
                                                "nats-py"]},  # fmt: skip
            },
            "durability": {"nats": f"JetStream file storage, sync_interval {NATS_SYNC_INTERVAL}",
                           "redis": f"appendonly yes, appendfsync {REDIS_APPENDFSYNC}, no RDB snapshots"},
            "celery_settings": "task_acks_late, worker_prefetch_multiplier=1, JSON, Redis result backend, "
            "--without-gossip --without-mingle --without-heartbeat",
        }

    def close(self):
        self.receiver.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


async def _publish_only(nats_url, workflow, jobs):
    nc = await nats.connect(nats_url, connect_timeout=5)
    try:
        await publish_weft_jobs(nc, workflow, jobs)
    finally:
        await nc.close()


async def _wait_results(nats_url, workflow, wanted: set, timeout, after_subscribe):
    nc = await nats.connect(nats_url, connect_timeout=5)
    done = {}
    finished = asyncio.Event()

    async def on_result(msg):
        event = json.loads(msg.data)
        if event.get("job_id") in wanted:
            done[event["job_id"]] = (time.monotonic(), event.get("state"))
            if len(done) == len(wanted):
                finished.set()

    await nc.subscribe(f"weft.results.{workflow}", cb=on_result)
    await nc.flush()
    after_subscribe()
    try:
        await asyncio.wait_for(finished.wait(), timeout)
    finally:
        await nc.close()
    return {"done": done}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weft", required=True)
    parser.add_argument("--workflow", required=True, help="the digest workflow file (a parameter: it may grow steps)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cache-dir", default=str(ROOT / "target" / "bench-cache"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["e2e", "orchestration", "memory", "cold_start", "step_overhead"])  # fmt: skip
    args = parser.parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    started = time.monotonic()
    suite = Suite(args)
    failures = {}
    try:
        for name in args.only or ["e2e", "orchestration", "memory", "cold_start", "step_overhead"]:
            try:
                getattr(suite, name)()
            except Exception as error:  # noqa: BLE001 (recorded, the other comparisons still run)
                log(f"{name} FAILED: {type(error).__name__}: {error}")
                failures[name] = f"{type(error).__name__}: {error}"
                PROCS.stop_all()
        suite.results["meta"] = suite.meta(started)
        suite.results["failures"] = failures
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(suite.results, indent=2, sort_keys=True) + "\n")
        log(f"wrote {args.out} in {time.monotonic() - started:.0f}s")
    finally:
        PROCS.stop_all()
        if failures:
            log(f"logs kept in {suite.logs}")
            suite.receiver.close()
        else:
            suite.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
