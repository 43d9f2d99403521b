"""The seed's upload endpoint, as the API bench's peer (host/benches/api_upload.rs).

What the seed describes: "a user uploads a PDF via an HTTP endpoint"
(FastAPI `/upload` -> Celery task). This app does exactly that and no more:
it accepts a multipart file, saves it under SEED_UPLOAD_DIR, calls a Celery
task's `.delay(path)` on a Redis broker (SEED_BROKER_URL) and answers 202
with the task id. No Celery worker consumes the task during the bench: the
seed's API cost ends at `.delay()`, which returns once Redis has the message.

Written the way FastAPI's tutorials write it (an `async def` handler that
saves the file and calls `.delay()` in place); served by
`uvicorn seed_app:app --workers 2` with uvicorn's standard extras (uvloop,
httptools), as deployed.
"""

import os
import shutil
import uuid

from celery import Celery
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse

UPLOAD_DIR = os.environ.get("SEED_UPLOAD_DIR", "/tmp/seed-uploads")
os.makedirs(UPLOAD_DIR, exist_ok=True)

celery_app = Celery("seed", broker=os.environ.get("SEED_BROKER_URL", "redis://127.0.0.1:6379/0"))
celery_app.conf.task_ignore_result = True


@celery_app.task(name="seed.process_pdf")
def process_pdf(path: str) -> None:
    """The pipeline's first task; never run during the bench (no worker)."""


app = FastAPI()


@app.get("/healthz")
async def healthz() -> dict:
    return {"ok": True}


@app.post("/upload", status_code=202)
async def upload(file: UploadFile = File(...)) -> JSONResponse:
    path = os.path.join(UPLOAD_DIR, f"{uuid.uuid4().hex}.pdf")
    with open(path, "wb") as out:
        shutil.copyfileobj(file.file, out)
    task = process_pdf.delay(path)
    return JSONResponse({"task_id": task.id, "path": path}, status_code=202)
