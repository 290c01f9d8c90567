"""The baseline for bench/ingress/run.py: a Flask hello world answering the same route."""

from flask import Flask

app = Flask(__name__)


@app.post("/line/events")
def hello():
    return {"status": "ok"}
