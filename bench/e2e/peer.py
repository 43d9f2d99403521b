"""The peer Weft is compared with: a Celery app on a Redis broker running the
PDF digest pipeline in Python, written the way a Python team would write it.

Pipeline (one task per document, like one Weft job):
  load       pypdf `PdfReader(...).pages[i].extract_text()`, one text per page
  chunk      langchain-text-splitters `RecursiveCharacterTextSplitter`
             (chunk_size=1000, chunk_overlap=100), per page
  mask       Presidio analyzer + anonymizer, restricted to its pattern (non-NER)
             recognizers for the entity types `pii-mask` handles: e-mail, phone,
             credit card, IBAN, US SSN, IP address, date (Presidio has no
             date-of-birth type). PERSON needs a spaCy NER model that is not on
             PyPI, so the NLP engine is a blank spaCy English pipeline
             (tokenizer only); replace-with-tag anonymization (`<EMAIL_ADDRESS>`).
  summarize  LexRank over TF-IDF (scikit-learn `TfidfVectorizer`, cosine
             similarity, PageRank with damping 0.85), 5 sentences / 1200 chars,
             map-reduce over 50 000-character windows, like `summarize`.
  notify     HTTP POST of the job's summary and PII counts to NOTIFY_URL (if
             set), like the benchmark workflow's `notify` webhook step.

Orchestration peer: `noop` tasks chained five deep (`chain(noop.s(x), noop.s(), ...)`).

Settings (environment): BROKER_URL (redis://...), NOTIFY_URL. Celery is
configured for at-least-once like Weft's worker: `task_acks_late`, prefetch
multiplier 1, JSON serializer, results in Redis (Weft stores each step's
checkpoint and the job record in JetStream KV).
"""

import base64
import io
import json
import logging
import os
import re
import sys
import urllib.request
from pathlib import Path

# Presidio's e-mail recognizer uses tldextract, which would download the
# public suffix list; the benchmark stays offline and uses its bundled snapshot.
os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""

from celery import Celery  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
from presidio_engines import presidio_engines  # noqa: E402

logging.getLogger("pypdf").setLevel(logging.ERROR)
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

BROKER_URL = os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0")
NOTIFY_URL = os.environ.get("NOTIFY_URL", "")

app = Celery("peer", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=3600,
)

ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "DATE_TIME"]


# Built once per worker process at import, as a Python team would.
ANALYZER, ANONYMIZER = presidio_engines()

from langchain_text_splitters import RecursiveCharacterTextSplitter  # noqa: E402
from pypdf import PdfReader  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
import numpy as np  # noqa: E402

SPLITTER = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=100)
MAX_SENTENCES = 5
MAX_CHARS = 1200
MAP_REDUCE_CHARS = 50_000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def load(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    return [page.extract_text() or "" for page in reader.pages]


def chunk(pages: list[str]) -> list[str]:
    return [c for page in pages for c in SPLITTER.split_text(page)]


def mask(text: str) -> tuple[str, int]:
    """The masked text and how many findings were masked."""
    results = ANALYZER.analyze(text=text, language="en", entities=ENTITIES)
    return ANONYMIZER.anonymize(text=text, analyzer_results=results).text, len(results)


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if len(s.strip()) > 1]


def lexrank(sentences: list[str]) -> list[int]:
    """Sentence indices by LexRank score, best first."""
    if len(sentences) <= 1:
        return list(range(len(sentences)))
    try:
        tfidf = TfidfVectorizer(stop_words="english").fit_transform(sentences)
    except ValueError:  # only stop words
        return list(range(len(sentences)))
    sim = (tfidf @ tfidf.T).toarray()
    np.fill_diagonal(sim, 0.0)
    rows = sim.sum(axis=1, keepdims=True)
    n = len(sentences)
    transition = np.where(rows > 0, sim / np.where(rows > 0, rows, 1), 1.0 / n)
    scores = np.full(n, 1.0 / n)
    for _ in range(100):
        new = 0.15 / n + 0.85 * transition.T @ scores
        if np.abs(new - scores).sum() < 1e-6:
            scores = new
            break
        scores = new
    return sorted(range(n), key=lambda i: (-scores[i], i))


def select(sentences: list[str]) -> list[str]:
    picked, chars = [], 0
    for i in lexrank(sentences):
        if len(picked) >= MAX_SENTENCES:
            break
        if chars + len(sentences[i]) > MAX_CHARS and picked:
            continue
        picked.append(i)
        chars += len(sentences[i])
    return [sentences[i] for i in sorted(picked)]


def summarize(texts: list[str]) -> str:
    total = sum(len(t) for t in texts)
    if total <= MAP_REDUCE_CHARS:
        return " ".join(select(split_sentences("\n".join(texts))))
    # Map: summarise windows of the threshold size; reduce: summarise the summaries.
    windows, window, size = [], [], 0
    for text in texts:
        if size + len(text) > MAP_REDUCE_CHARS and window:
            windows.append(window)
            window, size = [], 0
        window.append(text)
        size += len(text)
    if window:
        windows.append(window)
    partial = [s for w in windows for s in select(split_sentences("\n".join(w)))]
    return " ".join(select(partial))


def notify(job_id: str, summary: str, findings: int) -> None:
    if not NOTIFY_URL:
        return
    body = json.dumps({"job_id": job_id, "status": "succeeded", "summary": summary, "pii_findings": findings}).encode()
    request = urllib.request.Request(NOTIFY_URL, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def digest_pdf(job_id: str, pdf: bytes) -> dict:
    pages = load(pdf)
    chunks = chunk(pages)
    masked = [mask(c) for c in chunks]
    summary = summarize([text for text, _ in masked])
    notify(job_id, summary, sum(n for _, n in masked))
    return {"job_id": job_id, "pages": len(pages), "chunks": len(chunks), "summary": summary}


@app.task(name="peer.digest")
def digest(job_id: str, pdf_base64: str) -> dict:
    return digest_pdf(job_id, base64.b64decode(pdf_base64))


@app.task(name="peer.noop")
def noop(value):
    return value
