"""`plmkit serve`: the real server (uvicorn + Starlette in its own process) on a fine-tuned
classifier answers 200 concurrent requests exactly as `plmkit predict` does, refuses every bad
request with a 4xx and one line and keeps serving, and answers 503 when its queue is full.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from serving import build_classifier, cli, serving

from plmkit.config import ServeConfig
from plmkit.serve.batcher import Batcher, QueueFull
from plmkit.serve.endpoint import Endpoint
from plmkit.serve.server import make_app
from plmkit.tasks.classification.task import CLASSIFICATION

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_classifier(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def url(model: dict[str, Path]) -> Iterator[str]:
    with serving(model["cls"], "max_batch=16", "max_wait_ms=10") as base:
        yield base


def _texts(dev: Path, n: int) -> list[str]:
    return [line.split("\t")[0] for line in dev.read_text(encoding="utf-8").splitlines()[1 : n + 1]]


def test_200_concurrent_requests_equal_plmkit_predict(model, url, tmp_path: Path) -> None:
    texts = _texts(model["dev"], 200)
    listing = tmp_path / "texts.txt"
    listing.write_text("\n".join(texts) + "\n", encoding="utf-8")
    cli("predict", f"model={model['cls']}", f"file={listing}", f"output={tmp_path / 'p.jsonl'}")
    expected = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]

    async def drive() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            answers: list[httpx.Response | None] = [None] * len(texts)

            async def one_client(k: int) -> None:  # 50 clients, 4 requests each, one at a time
                for i in range(k, len(texts), 50):
                    answers[i] = await client.post("/predict", json={"text": texts[i]})

            await asyncio.gather(*(one_client(k) for k in range(50)))
            return answers

    responses = asyncio.run(drive())
    assert [r.status_code for r in responses] == [200] * 200
    got = [r.json() for r in responses]
    assert [g["text"] for g in got] == texts
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    worst = max(abs(g["probabilities"][k] - e["probabilities"][k])
                for g, e in zip(got, expected, strict=True) for k in e["probabilities"])
    assert worst < 1e-5, worst  # float noise of other batch shapes, nothing more
    health = httpx.get(f"{url}/health").json()
    assert health["batches"] < 200, health  # concurrent requests did share model calls


def test_health_metadata_and_a_list_request(model, url) -> None:
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    meta = httpx.get(f"{url}/metadata").json()
    assert meta["task"] == "classification" and meta["form"] == "pytorch"
    assert sorted(meta["labels"]) == ["0", "1"] and meta["fields"] == ["text"]
    assert meta["parameters"] > 10_000 and meta["inspect"] is True
    texts = _texts(model["dev"], 3)
    listed = httpx.post(f"{url}/predict", json={"inputs": [{"text": t} for t in texts]}).json()
    one = [httpx.post(f"{url}/predict", json={"text": t}).json() for t in texts]
    assert [p["label"] for p in listed["predictions"]] == [p["label"] for p in one]
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "<canvas" in page.text and "Noto Sans CJK SC" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline


def test_inspect_returns_attention_and_attributions(url) -> None:
    body = httpx.post(f"{url}/inspect", json={"text": "质量很好", "method": "grad_x_input"}).json()
    n = len(body["tokens"])
    assert len(body["attentions"]) == body["layers"] == 2 and len(body["attentions"][0]) == 2
    rows = body["attentions"][1][0]
    assert len(rows) == n and all(abs(sum(row) - 1) < 1e-2 for row in rows)  # softmax rows
    assert len(body["attributions"]["scores"]) == n


BAD = [  # (what, how it is sent, status)
    ("invalid JSON", {"content": b'{"text": "a'}, 400),
    ("an empty body", {"content": b""}, 400),
    ("not UTF-8", {"content": b'{"text": "\xff\xfe"}'}, 400),
    ("a list, not an object", {"json": ["质量很好"]}, 422),
    ("the text field missing", {"json": {}}, 422),
    ("an unknown field", {"json": {"text": "好", "txt": "好"}}, 422),
    ("text of the wrong type", {"json": {"text": 5}}, 422),
    ("an empty text", {"json": {"text": "   "}}, 422),
    ("a 1 MB text", {"json": {"text": "好" * 400_000}}, 413),
    ("a text over max_text_chars", {"json": {"text": "好" * 20_000}}, 413),
    ("an unknown task", {"json": {"task": "translation", "text": "好"}}, 422),
    ("too many items", {"json": {"inputs": [{"text": "好"}] * 65}}, 413),
    ("inputs not a list", {"json": {"inputs": "好"}}, 422),
    ("an item that is not an object", {"json": {"inputs": ["好"]}}, 422),
    ("a second text for a one-text model", {"json": {"text": "好", "text_pair": "好"}}, 422),
    ("max_new_tokens for a classifier", {"json": {"text": "好", "max_new_tokens": 10**9}}, 422),
]


@pytest.mark.parametrize(("what", "request_kwargs", "status"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_is_a_4xx_with_one_line_and_the_server_keeps_serving(
        url, what, request_kwargs, status) -> None:
    response = httpx.post(f"{url}/predict", timeout=30, **request_kwargs)
    assert response.status_code == status, (what, response.text)
    reason = response.json()["error"]
    assert reason and "\n" not in reason and "Traceback" not in reason and len(reason) < 300
    assert httpx.post(f"{url}/predict", json={"text": "质量很好"}).status_code == 200


def test_wrong_routes_and_methods_are_one_line_too(url) -> None:
    for response, status in [(httpx.get(f"{url}/predict"), 405), (httpx.get(f"{url}/nope"), 404)]:
        assert response.status_code == status and "\n" not in response.json()["error"]


# A test double for the model, in the two tests below only: a full queue needs a model slow enough
# to keep requests waiting, which a real model on a loaded 2-core box does not promise.
class SlowModel:
    task, settings = "classification", None
    task_model = SimpleNamespace(family=CLASSIFICATION)  # inputs are checked as a classifier's

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls = seconds, []

    def predict(self, values: list) -> list[dict]:
        self.calls.append(list(values))
        time.sleep(self.seconds)
        return [{"label": str(len(v))} for v in values]


def test_a_full_queue_answers_503_then_serves_again() -> None:
    cfg = ServeConfig(max_batch=1, queue_size=2, max_wait_ms=0)
    app = make_app(Endpoint(SlowModel(0.5), cfg), cfg)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                async def post(i: int) -> int:
                    await asyncio.sleep(0.05 * i)  # in order: one runs, two wait, the rest overflow
                    return (await client.post("/predict", json={"text": "x" * (i + 1)})).status_code
                return list(await asyncio.gather(*(post(i) for i in range(6))))

        codes = asyncio.run(burst())
        after = httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "abc"}, timeout=30)
        server.should_exit = True
        thread.join(timeout=10)
    assert codes[:3] == [200, 200, 200] and 503 in codes[3:], codes
    assert after.status_code == 200 and after.json() == {"text": "abc", "label": "3"}


def test_the_batcher_fills_batches_and_a_bad_entry_fails_alone() -> None:
    model = SlowModel(0.05)

    def run(values: list, group: object) -> list:
        if "bad" in values:
            raise ValueError("bad input")
        return model.predict(values)

    async def scenario() -> tuple[list, list]:
        batcher = Batcher(run, max_batch=4, max_wait_ms=50, queue_size=8)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([c]) for c in "abcd"),
                                       batcher.submit(["bad"]), batcher.submit(["ef"]),
                                       return_exceptions=True)
        try:
            await asyncio.gather(*(batcher.submit(["x"] * 3) for _ in range(3)))
        except QueueFull:
            full = True
        else:
            full = False
        await batcher.stop()
        return list(results), [full]

    results, full = asyncio.run(scenario())
    assert results[:4] == [[{"label": "1"}]] * 4 and isinstance(results[4], ValueError)
    assert results[5] == [{"label": "2"}] and model.calls[0] == list("abcd")  # one batch of 4
    assert full == [True]  # 9 inputs at once: past queue_size 8


def test_a_generation_endpoint_bounds_max_new_tokens_and_generates_as_plmkit_generate(
        tmp_path: Path, capsys) -> None:
    from plmkit.serve.endpoint import BadRequest, load_endpoint

    corpus = tmp_path / "corpus.txt"
    lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1:3001]
    corpus.write_text("\n".join(line.rsplit("\t", 1)[0] for line in lines) + "\n", encoding="utf-8")
    cli("tokenizer", f"inputs={corpus}", f"output={tmp_path / 'bpe'}", "kind=bpe", "vocab_size=500")
    cli("prepare", f"inputs={corpus}", f"tokenizer={tmp_path / 'bpe'}", f"output={tmp_path / 'sh'}",
        "val_fraction=0.05", "workers=1")
    cli("pretrain", f"shards={tmp_path / 'sh'}", f"output={tmp_path / 'gpt'}", "objective.kind=clm",
        "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2",
        "model.intermediate_size=64", "model.max_position=64", "objective.seq_len=32",
        "train.max_steps=5", "train.batch_size=8")
    endpoint = load_endpoint(tmp_path / "gpt", ServeConfig(max_new_tokens=100))
    assert endpoint.task == "generation" and endpoint.metadata()["inspect"] is False
    for absurd in (10**9, 0, -5, "20", 2.5, True):
        with pytest.raises(BadRequest) as refused:
            endpoint.items({"text": "the film", "max_new_tokens": absurd})
        assert refused.value.status == 422 and "max_new_tokens" in str(refused.value)
    items, _ = endpoint.items({"inputs": [{"text": "the film", "max_new_tokens": 7},
                                          {"text": "a story of"}]})
    capsys.readouterr()
    cli("generate", f"model={tmp_path / 'gpt'}", "text=the film", "generation.max_new_tokens=7")
    expected = json.loads(capsys.readouterr().out.splitlines()[-1])
    got = {**items[0].shown, **endpoint.run([items[0].value], items[0].group)[0]}
    assert got == expected  # {"input": ..., "output": ...}, as plmkit generate prints it


def test_serve_without_starlette_says_how_to_install_it(monkeypatch, capsys) -> None:
    import sys

    from plmkit.cli import main

    monkeypatch.delitem(sys.modules, "plmkit.serve.server", raising=False)
    monkeypatch.setitem(sys.modules, "starlette", None)  # import starlette → ImportError
    monkeypatch.setitem(sys.modules, "starlette.applications", None)
    assert main(["serve", "model=anything"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'plmkit[serve]'" in err and "\n" not in err, err


@pytest.mark.slow  # the export's gate scores and times every form: ~20 s on a loaded 2-core box
def test_an_onnx_form_serves_the_same_labels_and_says_inspection_is_not_there(
        model, tmp_path: Path) -> None:
    from plmkit.serve.endpoint import BadRequest, load_endpoint

    cli("export", f"model={model['cls']}", "format=onnx", f"eval_file={model['dev']}",
        f"output={tmp_path / 'onnx'}")
    onnx, torch_form = (load_endpoint(path, ServeConfig()) for path in (tmp_path / "onnx", model["cls"]))
    meta = onnx.metadata()
    assert meta["form"] == "onnx" and meta["inspect"] is False and "ONNX" in meta["inspect_note"]
    with pytest.raises(BadRequest) as refused:
        onnx.inspect("质量很好", "integrated_gradients")
    assert refused.value.status == 422
    texts = _texts(model["dev"], 20)
    assert ([p["label"] for p in onnx.run(texts)] == [p["label"] for p in torch_form.run(texts)])
