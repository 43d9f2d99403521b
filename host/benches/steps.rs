//! Throughput of the standard steps in the sandbox, for `bench/steps/run.sh`.
//!
//! Each contender runs the real component from `plugins/` through the engine
//! (fresh `Store` per attempt, default limits raised only where a step's
//! input needs it), exactly as a workflow step would; `pdf-load` is also run
//! as the same Rust extractor linked natively, so the sandbox's cost shows
//! as a ratio. The Python peers run in `bench/steps/peers.py`; `run.sh`
//! alternates the two processes round by round and takes the medians.
//!
//! One round per invocation, printed as one JSON object on stdout:
//!
//! ```text
//! steps --text FILE --pii-corpus FILE --pdf-dir DIR [--exclude A.pdf,B.pdf] [--big-pdf FILE] [--dump-dir DIR]
//!       [--pdf-reps N]   # attempts per document and side for pdf-load (medians; default 1)
//! steps --pii-findings CORPUS.jsonl   # JSONL of the sandboxed step's findings per record
//! ```
//!
//! Timed regions cover the attempt (instantiate, copy in, run, copy out,
//! drop), never compilation, which is done once before the first round.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft::engine::{CompiledPlugin, Engine, EngineSettings};
use weft::scheduler::StepAttempt;
use weft::{Item, Payload};

type BenchResult<T> = Result<T, String>;

/// The steps the bench runs, with the limits their inputs need.
const WORKFLOW: &str = "name: steps-bench
version: '1'
steps:
  - id: pdf-load
    plugin: pdf-load
    timeout: 600s
    limits: { memory: 2GiB, output: 512MiB }
  - id: chunk
    plugin: chunk
    timeout: 600s
    limits: { memory: 1GiB, output: 512MiB }
  - id: pii-mask
    plugin: pii-mask
    timeout: 600s
    limits: { memory: 1GiB, output: 512MiB }
  - id: summarize
    plugin: summarize
    timeout: 600s
    limits: { memory: 1GiB, output: 64MiB }
";

struct Sandbox {
    engine: Engine,
    workflow: weft::workflow::Workflow,
    runtime: tokio::runtime::Runtime,
}

impl Sandbox {
    fn new() -> BenchResult<Self> {
        Self::with_settings(EngineSettings::default())
    }

    /// A sandbox whose components are compiled without wasmtime's epoch
    /// checks (no step deadlines): a reference that shows what the checks
    /// cost, never how Weft runs steps.
    fn without_deadline_checks() -> BenchResult<Self> {
        Self::with_settings(EngineSettings { deadline_checks: false, ..EngineSettings::default() })
    }

    fn with_settings(settings: EngineSettings) -> BenchResult<Self> {
        let engine = Engine::new(settings).map_err(|e| e.to_string())?;
        let workflow = weft::workflow::parse("steps-bench.yaml", WORKFLOW).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        Ok(Sandbox { engine, workflow, runtime })
    }

    fn plugin(&self, name: &str) -> BenchResult<CompiledPlugin> {
        let path = Path::new(env!("WEFT_COMPONENTS_DIR")).join(format!("{}.wasm", name.replace('-', "_")));
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        self.engine.load_plugin(name, &bytes).map_err(|e| e.to_string())
    }

    /// One attempt of step `name` over `input`; returns its output and the
    /// wall time of the attempt.
    fn run(
        &self,
        plugin: &CompiledPlugin,
        name: &str,
        input: Vec<Item>,
        config: &str,
    ) -> BenchResult<(Vec<Item>, Duration)> {
        self.run_timed(plugin, name, input, config).map(|(items, timing)| (items, timing.wall))
    }

    /// [`Sandbox::run`], also giving the attempt's on-CPU time.
    fn run_timed(
        &self,
        plugin: &CompiledPlugin,
        name: &str,
        input: Vec<Item>,
        config: &str,
    ) -> BenchResult<(Vec<Item>, Timing)> {
        let step = self.workflow.steps.iter().find(|s| s.id == name).ok_or(format!("no step {name}"))?;
        let attempt = StepAttempt {
            job_id: Arc::from("bench"),
            step: step.clone(),
            attempt: 1,
            item_index: None,
            timeout: Duration::from_secs(600),
            input,
        };
        let (out, timing) =
            Timing::measure(|| self.runtime.block_on(self.engine.run_attempt(plugin, &attempt, config)));
        out.map(|items| (items, timing)).map_err(|e| format!("step {name}: {e}"))
    }
}

/// What one timed region took: wall time, and the time the calling thread
/// spent on a CPU (user and kernel, page faults included), from the
/// thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`). The attempt runs on this
/// thread (a current-thread runtime; wasmtime runs the guest on a fiber of
/// it), so the CPU time leaves out the time other processes held the CPU,
/// which on a shared machine is most of the spread of the wall times.
///
/// Not `/proc/thread-self/schedstat`, which an earlier version read: for the
/// thread that reads it, it lags until the next scheduler tick, so a
/// document that takes 2 ms read as 0 or 4 ms (bench/results/pdf-load-sandbox.md).
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

impl Timing {
    fn measure<T>(f: impl FnOnce() -> T) -> (T, Timing) {
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        let out = f();
        let wall = start.elapsed();
        let cpu = match (cpu_start, thread_cpu_time()) {
            (Some(a), Some(b)) => b.checked_sub(a),
            _ => None,
        };
        (out, Timing { wall, cpu })
    }
}

/// This thread's on-CPU time so far.
fn thread_cpu_time() -> Option<Duration> {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(u64::try_from(now.tv_sec).ok()?, u32::try_from(now.tv_nsec).ok()?))
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

struct Args {
    text: Option<PathBuf>,
    pii_corpus: Option<PathBuf>,
    pdf_dir: Option<PathBuf>,
    big_pdf: Option<PathBuf>,
    dump_dir: Option<PathBuf>,
    pii_findings: Option<PathBuf>,
    exclude: Vec<String>,
    /// Attempts per document and side in the pdf-load comparison.
    pdf_reps: usize,
}

fn parse_args() -> BenchResult<Args> {
    let mut args = Args {
        text: None,
        pii_corpus: None,
        pdf_dir: None,
        big_pdf: None,
        dump_dir: None,
        pii_findings: None,
        exclude: Vec::new(),
        pdf_reps: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().map(PathBuf::from).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--text" => args.text = Some(value()?),
            "--pii-corpus" => args.pii_corpus = Some(value()?),
            "--pdf-dir" => args.pdf_dir = Some(value()?),
            "--big-pdf" => args.big_pdf = Some(value()?),
            "--dump-dir" => args.dump_dir = Some(value()?),
            "--pii-findings" => args.pii_findings = Some(value()?),
            "--exclude" => {
                let names = value()?;
                args.exclude.extend(names.to_string_lossy().split(',').map(str::to_string));
            }
            "--pdf-reps" => {
                let reps = value()?;
                args.pdf_reps = reps.to_string_lossy().parse().map_err(|e| format!("--pdf-reps: {e}"))?;
                if args.pdf_reps == 0 {
                    return Err("--pdf-reps must be at least 1".into());
                }
            }
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// The texts of the labelled pii-mask corpus, in record order.
fn corpus_texts(path: &Path) -> BenchResult<Vec<String>> {
    let data = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    data.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let record: Value = serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
            record["text"].as_str().map(str::to_string).ok_or(format!("{}: a record without text", path.display()))
        })
        .collect()
}

/// PDFs of the corpus directory that the native extractor opens, sorted by
/// name, except those named in `exclude`.
fn pdfs(dir: &Path, exclude: &[String]) -> BenchResult<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.extension().is_none_or(|e| e != "pdf") || exclude.contains(&name) {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        // Encrypted or broken documents are skipped by every contender alike.
        if pdf_load::load_pdf(&bytes, &[], &pdf_load::Config::default()).is_ok() {
            out.push((name, bytes));
        }
    }
    Ok(out)
}

fn text_of(items: &[Item]) -> impl Iterator<Item = &str> {
    items.iter().filter_map(Item::as_text)
}

fn mb_per_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// A document's name and the text of each of its pages.
type DocPages = (String, Vec<String>);

/// One way of running `pdf-load` that the bench times.
struct Side<'a> {
    sandbox: &'a Sandbox,
    plugin: CompiledPlugin,
}

/// The timings of one side over a set of documents: per document, one
/// [`Timing`] per attempt.
#[derive(Default)]
struct SideTimes {
    docs: Vec<Vec<Timing>>,
}

impl SideTimes {
    /// Records an attempt at document `doc` (in the order of the documents).
    fn record(&mut self, doc: usize, timing: Timing) {
        if self.docs.len() <= doc {
            self.docs.resize_with(doc + 1, Vec::new);
        }
        self.docs[doc].push(timing);
    }

    /// Each document's on-CPU seconds per attempt (`None` without a CPU clock).
    fn cpu_per_doc(&self) -> impl Iterator<Item = Option<Vec<f64>>> + '_ {
        self.docs.iter().map(|attempts| attempts.iter().map(|t| t.cpu.map(|d| d.as_secs_f64())).collect())
    }

    /// Each document's median on-CPU seconds.
    fn cpu_medians(&self) -> Vec<Option<f64>> {
        self.cpu_per_doc().map(|cpu| cpu.map(|mut v| median(&mut v))).collect()
    }

    /// The summary the report reads: `secs` is the sum over documents of the
    /// median wall time, `cpu_secs` the same of on-CPU time (see
    /// [`Timing`]), `best_cpu_secs` the sum of each document's least
    /// on-CPU time (the least disturbed by other processes sharing the
    /// caches and cores).
    fn summary(&self, names: &[&str], pages: usize, reps: usize) -> Value {
        let secs: f64 = self
            .docs
            .iter()
            .map(|attempts| median(&mut attempts.iter().map(|t| t.wall.as_secs_f64()).collect::<Vec<_>>()))
            .sum();
        let cpu_secs = self.cpu_medians().into_iter().sum::<Option<f64>>();
        let best_cpu_secs =
            self.cpu_per_doc().map(|cpu| cpu.map(|v| v.into_iter().fold(f64::INFINITY, f64::min))).sum::<Option<f64>>();
        json!({"docs": names.len(), "names": names, "pages": pages, "reps": reps, "secs": secs,
               "pages_per_s": pages as f64 / secs, "cpu_secs": cpu_secs, "best_cpu_secs": best_cpu_secs})
    }
}

/// What [`pdf_load_pair`] measured: the summaries of the sandboxed, native
/// and unchecked sides, and the sandbox's page texts.
struct PdfLoadTimes {
    sandbox: Value,
    native: Value,
    unchecked: Value,
    texts: Vec<DocPages>,
}

/// `pdf-load` over `docs` in the sandbox, natively, and in a sandbox
/// without deadline checks (`unchecked`), the sides taking turns per
/// attempt (`reps` attempts of each side per document). The sandbox's
/// summary also lists each document's median on-CPU seconds as
/// [name, sandbox, native, unchecked].
fn pdf_load_pair(
    sandbox: &Side<'_>,
    unchecked: &Side<'_>,
    docs: &[(String, Vec<u8>)],
    reps: usize,
) -> BenchResult<PdfLoadTimes> {
    let (mut sandbox_times, mut native_times, mut unchecked_times) =
        (SideTimes::default(), SideTimes::default(), SideTimes::default());
    let mut pages = 0usize;
    let mut texts = Vec::new();
    for (doc, (name, bytes)) in docs.iter().enumerate() {
        let mut page_texts = Vec::new();
        for _ in 0..reps {
            let (items, timing) =
                sandbox.sandbox.run_timed(&sandbox.plugin, "pdf-load", vec![Item::bytes(bytes.clone())], "{}")?;
            sandbox_times.record(doc, timing);
            let (unchecked_items, timing) =
                unchecked.sandbox.run_timed(&unchecked.plugin, "pdf-load", vec![Item::bytes(bytes.clone())], "{}")?;
            unchecked_times.record(doc, timing);
            if text_of(&unchecked_items).ne(text_of(&items)) {
                return Err(format!("{name}: the sandboxes without and with deadline checks disagree"));
            }
            let (native, timing) = Timing::measure(|| pdf_load::load_pdf(bytes, &[], &pdf_load::Config::default()));
            let native = native.map_err(|e| format!("{name}: {e}"))?;
            native_times.record(doc, timing);
            std::hint::black_box(&native);
            page_texts = text_of(&items).map(str::to_string).collect();
            if page_texts.len() != native.len() {
                return Err(format!("{name}: sandbox gave {} pages, native {}", page_texts.len(), native.len()));
            }
        }
        pages += page_texts.len();
        texts.push((name.clone(), page_texts));
    }
    let names: Vec<&str> = docs.iter().map(|(name, _)| name.as_str()).collect();
    let columns = [sandbox_times.cpu_medians(), native_times.cpu_medians(), unchecked_times.cpu_medians()];
    let per_doc: Vec<Value> =
        names.iter().enumerate().map(|(i, name)| json!([name, columns[0][i], columns[1][i], columns[2][i]])).collect();
    let mut sandbox_summary = sandbox_times.summary(&names, pages, reps);
    sandbox_summary["per_doc_cpu_secs"] = json!(per_doc);
    Ok(PdfLoadTimes {
        sandbox: sandbox_summary,
        native: native_times.summary(&names, pages, reps),
        unchecked: unchecked_times.summary(&names, pages, reps),
        texts,
    })
}

fn bench_round(args: &Args) -> BenchResult<Value> {
    let sandbox = Sandbox::new()?;
    let mut out = serde_json::Map::new();

    if let Some(path) = &args.text {
        let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let chunk = sandbox.plugin("chunk")?;
        let bytes = text.len();
        let (items, elapsed) =
            sandbox.run(&chunk, "chunk", vec![Item::text(text)], r#"{"size":1000,"overlap":100}"#)?;
        let secs = elapsed.as_secs_f64();
        out.insert(
            "chunk".into(),
            json!({"bytes": bytes, "chunks": items.len(), "secs": secs, "mb_per_s": mb_per_s(bytes, secs)}),
        );
    }

    if let Some(path) = &args.pii_corpus {
        let texts = corpus_texts(path)?;
        let mask = sandbox.plugin("pii-mask")?;
        let bytes: usize = texts.iter().map(String::len).sum();
        let items: Vec<Item> = texts.into_iter().map(Item::text).collect();
        let (items, elapsed) = sandbox.run(&mask, "pii-mask", items, r#"{"style":"tag"}"#)?;
        let secs = elapsed.as_secs_f64();
        let findings = items
            .last()
            .and_then(Item::as_text)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| v["total"].as_u64())
            .unwrap_or(0);
        out.insert(
            "pii_mask".into(),
            json!({"bytes": bytes, "findings": findings, "secs": secs, "mb_per_s": mb_per_s(bytes, secs)}),
        );
    }

    // A second engine (its own pool reservation and epoch thread), only
    // when pdf-load is measured.
    let unchecked_sandbox =
        (args.pdf_dir.is_some() || args.big_pdf.is_some()).then(Sandbox::without_deadline_checks).transpose()?;
    let pdf_sides = || -> BenchResult<(Side<'_>, Side<'_>)> {
        let unchecked_sandbox = unchecked_sandbox.as_ref().ok_or("no sandbox without deadline checks")?;
        Ok((
            Side { sandbox: &sandbox, plugin: sandbox.plugin("pdf-load")? },
            Side { sandbox: unchecked_sandbox, plugin: unchecked_sandbox.plugin("pdf-load")? },
        ))
    };

    if let Some(dir) = &args.pdf_dir {
        let docs = pdfs(dir, &args.exclude)?;
        let (load, unchecked) = pdf_sides()?;
        let times = pdf_load_pair(&load, &unchecked, &docs, args.pdf_reps)?;
        let texts = times.texts;
        out.insert("pdf_load_sandbox".into(), times.sandbox);
        out.insert("pdf_load_native".into(), times.native);
        out.insert("pdf_load_sandbox_unchecked".into(), times.unchecked);
        if let Some(dump) = &args.dump_dir {
            std::fs::create_dir_all(dump).map_err(|e| format!("create {}: {e}", dump.display()))?;
            for (name, pages) in &texts {
                let file = dump.join(format!("{name}.txt"));
                let joined: String = pages.iter().map(|p| format!("{p}\u{c}")).collect();
                std::fs::write(&file, joined).map_err(|e| format!("write {}: {e}", file.display()))?;
            }
        }

        // summarize: each document's pages as one attempt, as in pdf-digest.
        let summarize = sandbox.plugin("summarize")?;
        let (mut secs, mut pages) = (0.0, 0usize);
        for (_, page_texts) in &texts {
            let items: Vec<Item> =
                page_texts.iter().filter(|t| !t.trim().is_empty()).cloned().map(Item::text).collect();
            if items.is_empty() {
                continue;
            }
            pages += items.len();
            let (_, elapsed) = sandbox.run(&summarize, "summarize", items, r#"{"max_sentences":5}"#)?;
            secs += elapsed.as_secs_f64();
        }
        out.insert("summarize".into(), json!({"pages": pages, "secs": secs, "pages_per_s": pages as f64 / secs}));
    }

    if let Some(path) = &args.big_pdf {
        let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let (load, unchecked) = pdf_sides()?;
        let docs = vec![(path.display().to_string(), bytes)];
        let times = pdf_load_pair(&load, &unchecked, &docs, args.pdf_reps)?;
        out.insert("pdf_load_big_sandbox".into(), times.sandbox);
        out.insert("pdf_load_big_native".into(), times.native);
        out.insert("pdf_load_big_sandbox_unchecked".into(), times.unchecked);
    }
    Ok(Value::Object(out))
}

/// The sandboxed step's findings for every corpus record, one JSON line each.
fn pii_findings(path: &Path) -> BenchResult<()> {
    let sandbox = Sandbox::new()?;
    let mask = sandbox.plugin("pii-mask")?;
    let texts = corpus_texts(path)?;
    let count = texts.len();
    let items: Vec<Item> = texts.into_iter().map(Item::text).collect();
    let (items, _) = sandbox.run(&mask, "pii-mask", items, r#"{"style":"tag","findings_item":true}"#)?;
    let report = match items.last().map(|i| &i.payload) {
        Some(Payload::Text(t)) => serde_json::from_str::<Value>(t).map_err(|e| format!("findings item: {e}"))?,
        _ => return Err("pii-mask returned no findings item".into()),
    };
    let mut per_record: Vec<Vec<Value>> = vec![Vec::new(); count];
    for f in report["findings"].as_array().into_iter().flatten() {
        let index = f["item"].as_u64().ok_or("a finding without item")? as usize;
        let slot = per_record.get_mut(index).ok_or("a finding for an unknown item")?;
        slot.push(json!({"type": f["type"], "start": f["start"], "end": f["end"]}));
    }
    for (id, findings) in per_record.into_iter().enumerate() {
        println!("{}", json!({"id": id, "findings": findings}));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = parse_args().and_then(|args| match &args.pii_findings {
        Some(path) => pii_findings(path),
        None => bench_round(&args).map(|v| println!("{v}")),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("steps bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
