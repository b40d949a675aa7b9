"""The batching server against what a user would write: requests/s and latency under load.

Three servers on the same fine-tuned sentence classifier (default: the MiniLM-L6 SST-2 teacher
of bench/lighter.py, a Hugging Face directory), each in its own process on loopback:
(a) `plmkit serve` with dynamic batching, (b) `plmkit serve max_batch=1` (batching off), and
(c) a plain FastAPI app calling a Transformers `pipeline("text-classification")` per request.
Each is driven by the same CLIENTS concurrent httpx clients sending REQUESTS single-sentence
requests each (SST-2 dev sentences), after a warm-up; the table shows requests/s, p50/p95
latency and the ratio to (c), and how often (a)'s label equals (c)'s.

    .venv/bin/python bench/serve.py --threads 2 [--max-batch 32 --clients 32 --requests 20]
    .venv/bin/python bench/serve.py --threads 2 --form runs/lighter/teacher-forms/int8
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SST2_DEV = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"
MODEL = REPO / "runs" / "lighter" / "teacher" / "final"


def reference_server(model: str, port: int, threads: int) -> None:
    """(c): the FastAPI + pipeline server a user would write (run in its own process). This file
    has no `from __future__ import annotations`: FastAPI reads the local `Item` annotation."""
    import torch
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import pipeline

    torch.set_num_threads(threads)
    classify = pipeline("text-classification", model=model, device="cpu")
    app = FastAPI()

    class Item(BaseModel):
        text: str

    @app.post("/predict")
    def predict(item: Item) -> dict:
        return classify(item.text)[0]

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start(kind: str, model: Path, threads: int, max_batch: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if kind == "reference":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        cmd = [sys.executable, __file__, "--reference-server", str(port), "--model", str(model),
               "--threads", str(threads)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
    else:
        batch = f"max_batch={max_batch}" if kind == "batched" else "max_batch=1"
        cmd = [sys.executable, "-m", "plmkit", "serve", f"model={model}", "port=0",
               f"threads={threads}", batch, "max_wait_ms=5", "queue_size=1024"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
        url = proc.stdout.readline().rsplit(" at ", 1)[1].strip().rstrip("/")
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} server did not start")


async def drive(url: str, texts: list[str], clients: int, per_client: int) -> tuple[float, list, list]:
    """(requests/s, latencies in ms, labels in text order) for clients × per_client requests."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for text in texts[:20]:  # warm-up
            (await client.post("/predict", json={"text": text})).raise_for_status()
        latencies: list[float] = []
        labels: list[str | None] = [None] * (clients * per_client)

        async def one(k: int) -> None:
            for j in range(per_client):
                i = k * per_client + j
                began = time.perf_counter()
                response = await client.post("/predict", json={"text": texts[i % len(texts)]})
                latencies.append((time.perf_counter() - began) * 1000)
                response.raise_for_status()
                labels[i] = str(response.json()["label"])

        began = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(clients)))
        return len(labels) / (time.perf_counter() - began), latencies, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=20, help="per client")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    parser.add_argument("--max-batch", type=int, default=32, help="(a)'s max_batch")
    parser.add_argument("--form", type=Path, default=None,
                        help="serve this form of --model in (a) and (b), e.g. its int8 export; "
                             "(c) keeps the PyTorch model")
    parser.add_argument("--rounds", type=int, default=2, help="each server's best of this many runs")
    parser.add_argument("--reference-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_server:
        reference_server(str(args.model), args.reference_server, args.threads)
        return
    texts = [line.rsplit("\t", 1)[0].strip() for line in
             SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]]
    rows: dict[str, tuple] = {}
    labels = {}
    for round_ in range(args.rounds):  # interleaved, best round kept: the box is shared
        for kind in ("reference", "unbatched", "batched"):
            served = args.form if args.form is not None and kind != "reference" else args.model
            proc, url = start(kind, served, args.threads, args.max_batch)
            try:
                rate, latencies, labels[kind] = asyncio.run(
                    drive(url, texts, args.clients, args.requests))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            print(f"  round {round_ + 1} {kind}: {rate:.1f} req/s", file=sys.stderr)
            if kind not in rows or rate > rows[kind][0]:
                rows[kind] = (rate, *np.percentile(latencies, [50, 95]))
    names = {"batched": f"plmkit serve (dynamic batching, max_batch {args.max_batch}, 5 ms)",
             "unbatched": "plmkit serve max_batch=1 (batching off)",
             "reference": "FastAPI + Transformers pipeline, batch 1"}
    base = rows["reference"][0]
    print(f"{args.clients} clients × {args.requests} requests, {args.threads} torch thread(s) "
          f"per server, best of {args.rounds} interleaved rounds, model {args.model}"
          + (f", (a) and (b) serve {args.form}" if args.form is not None else ""))
    print("| server | requests/s | p50 ms | p95 ms | × (c) |\n|---|---:|---:|---:|---:|")
    for kind in ("batched", "unbatched", "reference"):
        rate, p50, p95 = rows[kind]
        print(f"| {names[kind]} | {rate:.1f} | {p50:.0f} | {p95:.0f} | {rate / base:.2f} |")
    same = np.mean([a == b for a, b in zip(labels["batched"], labels["reference"], strict=True)])
    print(f"labels of (a) equal to (c)'s: {100 * same:.1f}%")


if __name__ == "__main__":
    main()
