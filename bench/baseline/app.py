"""Baseline intake: a Flask app that hands each Infobip email report to Celery.

It answers 200 as soon as the task message is pushed to Redis. That is before anything is
durable: the report sits in Redis (in memory, snapshotted now and then) until a Celery worker
gets to it and commits a row, so a Redis restart, an evicted key or a task that fails loses a
report the provider was told had arrived, and the provider will not send it again. tidings, by
contrast, answers 2xx only after the raw body is committed to its own store.

Run (bench/run.py does this): gunicorn -w 2 -b 127.0.0.1:PORT --chdir bench/baseline app:app
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request
from tasks import store_email_report

app = Flask(__name__)


@app.post("/email")
def email_report() -> tuple[Response, int]:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return jsonify(error="expected a JSON object"), 400
    store_email_report.delay(payload)
    return jsonify(status="queued"), 200


@app.get("/healthz")
def healthz() -> tuple[Response, int]:
    return jsonify(status="ok"), 200
