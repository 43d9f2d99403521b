#!/usr/bin/env python3
"""The Python peers of the step benchmarks, and the inputs both sides share.

Peers, configured as a Python team would use them:
- chunking: LangChain `RecursiveCharacterTextSplitter(chunk_size=1000,
  chunk_overlap=100)` (length counted in characters, default separators),
  the same size and overlap as the `chunk` step's config in the bench;
- PII: Presidio `AnalyzerEngine` + `AnonymizerEngine` restricted to its
  pattern (rule-based) recognizers for the step's entity types: e-mail,
  phone (the `phonenumbers`-based recognizer), credit card, IBAN, US SSN,
  IP address and date (Presidio has no date-of-birth type; its date
  recognizer stands in for it). PERSON needs Presidio's spaCy NER model,
  which is not on PyPI, so the NLP engine is a blank spaCy English pipeline
  (tokenizer only) and PERSON is not detected by the peer;
- PDF text: pypdf `PdfReader(...).pages[i].extract_text()` and poppler's
  `pdftotext` (default mode, one process per document, text to stdout).

Usage:
  peers.py inputs --out DIR [--text-mb N] [--big-copies N]
  peers.py round --text F --pii-corpus F --pdf-dir D [--big-pdf F] [--dump-dir D]
  peers.py presidio-findings CORPUS.jsonl     # JSONL findings per record
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

# Presidio's e-mail recognizer uses tldextract, which would download the
# public suffix list; the bench stays offline and uses its bundled snapshot.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
from presidio_engines import presidio_engines  # noqa: E402

logging.getLogger("pypdf").setLevel(logging.ERROR)
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

# Presidio's entity names -> the step's.
PRESIDIO_TO_STEP = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "US_SSN",
    "IP_ADDRESS": "IP_ADDRESS",
    "DATE_TIME": "DATE_OF_BIRTH",
}


def corpus_texts(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def pdf_paths(pdf_dir):
    return sorted(os.path.join(pdf_dir, n) for n in os.listdir(pdf_dir) if n.endswith(".pdf"))


# ------------------------------------------------------------------ Presidio


def presidio_mask(analyzer, anonymizer, text):
    results = analyzer.analyze(text=text, language="en", entities=list(PRESIDIO_TO_STEP))
    return results, anonymizer.anonymize(text=text, analyzer_results=results).text


def presidio_findings(corpus):
    analyzer, anonymizer = presidio_engines()
    for i, text in enumerate(corpus_texts(corpus)):
        results, _ = presidio_mask(analyzer, anonymizer, text)
        findings = [{"type": PRESIDIO_TO_STEP[r.entity_type], "start": r.start, "end": r.end, "score": r.score}
                    for r in results]  # fmt: skip
        print(json.dumps({"id": i, "findings": findings}))


# ------------------------------------------------------------------ rounds


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def pypdf_pages(path, failures):
    from pypdf import PdfReader

    try:
        reader = PdfReader(path)
        return [page.extract_text() or "" for page in reader.pages]
    except Exception as e:  # noqa: BLE001 - a document pypdf cannot read counts as no pages
        failures.append(f"{os.path.basename(path)}: {type(e).__name__}")
        return []


def pdftotext(path):
    out = subprocess.run(["pdftotext", path, "-"], capture_output=True, check=False)
    return out.stdout.decode("utf-8", "replace").split("\f")


def pdf_round(paths, dump_dir=None):
    pypdf_secs = poppler_secs = 0.0
    pypdf_pages_total = poppler_pages = 0
    failures = []
    for path in paths:
        pages, secs = timed(lambda: pypdf_pages(path, failures))
        pypdf_secs += secs
        pypdf_pages_total += len(pages)
        if dump_dir:
            with open(os.path.join(dump_dir, os.path.basename(path) + ".txt"), "w", encoding="utf-8") as f:
                f.write("".join(p + "\f" for p in pages))
        ref, secs = timed(lambda: pdftotext(path))
        poppler_secs += secs
        poppler_pages += max(len(ref) - 1, 0)
    summary = lambda pages, secs: {"docs": len(paths), "pages": pages, "secs": secs, "pages_per_s": pages / secs}  # noqa: E731
    return dict(summary(pypdf_pages_total, pypdf_secs), failures=failures), summary(poppler_pages, poppler_secs)


def readable(paths, names):
    return [p for p in paths if os.path.basename(p) in names]


def round_(args):
    out = {}
    if args.text:
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        with open(args.text, encoding="utf-8") as f:
            text = f.read()
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)
        chunks, secs = timed(lambda: splitter.split_text(text))
        size = len(text.encode("utf-8"))
        out["chunk_langchain"] = {"bytes": size, "chunks": len(chunks), "secs": secs, "mb_per_s": size / 1e6 / secs}
    if args.pii_corpus:
        analyzer, anonymizer = presidio_engines()
        texts = corpus_texts(args.pii_corpus)
        if args.pii_records:
            texts = texts[: args.pii_records]
        size = sum(len(t.encode("utf-8")) for t in texts)
        results, secs = timed(lambda: [presidio_mask(analyzer, anonymizer, t)[0] for t in texts])
        findings = sum(len(r) for r in results)
        out["pii_presidio"] = {"bytes": size, "records": len(texts), "findings": findings, "secs": secs,
                               "mb_per_s": size / 1e6 / secs}  # fmt: skip
    if args.pdf_dir:
        # The same documents as the Rust side: those its extractor opens
        # (the Rust side lists them in --docs).
        paths = pdf_paths(args.pdf_dir)
        if args.docs:
            paths = readable(paths, set(args.docs.split(",")))
        if args.dump_dir:
            os.makedirs(args.dump_dir, exist_ok=True)
        out["pdf_pypdf"], out["pdf_pdftotext"] = pdf_round(paths, args.dump_dir)
    if args.big_pdf:
        out["pdf_big_pypdf"], out["pdf_big_pdftotext"] = pdf_round([args.big_pdf])
    print(json.dumps(out))


# ------------------------------------------------------------------ inputs


def inputs(args):
    """Writes text.txt (the chunk input) and big.pdf (a larger document)."""
    os.makedirs(args.out, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    corpus = os.path.join(here, "..", "..", "plugins", "pii-mask", "eval", "corpus.jsonl")
    texts = corpus_texts(corpus)
    target = int(args.text_mb * 1e6)
    parts, size, k = [], 0, 0
    while size < target:
        t = texts[k % len(texts)]
        parts.append(t)
        size += len(t.encode("utf-8")) + 2
        k += 1
    with open(os.path.join(args.out, "text.txt"), "w", encoding="utf-8") as f:
        f.write("\n\n".join(parts))

    from pypdf import PdfWriter

    # A larger document: real pages of the corpus (pdfTeX, LibreOffice, a
    # two-column paper) repeated, as one file.
    sources = ["pdflatex-4-pages.pdf", "multicolumn.pdf", "mistitled_outlines_example.pdf", "minimal-document.pdf"]
    writer = PdfWriter()
    for _ in range(args.big_copies):
        for name in sources:
            writer.append(os.path.join(args.pdf_dir, name))
    with open(os.path.join(args.out, "big.pdf"), "wb") as f:
        writer.write(f)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("--out", required=True)
    p.add_argument("--pdf-dir", required=True)
    p.add_argument("--text-mb", type=float, default=4.0)
    p.add_argument("--big-copies", type=int, default=20)
    p = sub.add_parser("round")
    p.add_argument("--text")
    p.add_argument("--pii-corpus")
    p.add_argument("--pii-records", type=int, default=0, help="only the first N records (0: all)")
    p.add_argument("--pdf-dir")
    p.add_argument("--docs", help="comma-separated file names to use from --pdf-dir")
    p.add_argument("--big-pdf")
    p.add_argument("--dump-dir")
    p = sub.add_parser("presidio-findings")
    p.add_argument("corpus")
    args = ap.parse_args()
    if args.cmd == "inputs":
        inputs(args)
    elif args.cmd == "round":
        round_(args)
    else:
        presidio_findings(args.corpus)


if __name__ == "__main__":
    sys.exit(main())
