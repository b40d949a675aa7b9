"""The HTTP face of `plmkit serve`: a Starlette app over one `Endpoint` and one `Batcher`.

Routes: `GET /` the web page (page.html, shipped with the package: no build step, no CDN),
`GET /health`, `GET /metadata`, `POST /predict` (through the batcher) and `POST /inspect`
(attention maps and attributions for one input, in the model's executor but not batched:
it is one input's gradients, not a throughput path). A body is read up to `max_body_bytes`
and refused with 413 past it before any parsing; everything a client gets wrong is a 4xx with
`{"error": "one line"}`, and an unexpected failure is a 500 with one line too, its traceback
going to the server's log, never to the client.

Only this module imports starlette and uvicorn, so the rest of plmkit runs without the `serve`
extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from plmkit.config import ServeConfig
from plmkit.runtime.errors import UserError
from plmkit.serve.batcher import Batcher, QueueFull
from plmkit.serve.endpoint import INSPECT_METHODS, BadRequest, Endpoint

log = logging.getLogger("plmkit.serve")


def make_app(endpoint: Endpoint, cfg: ServeConfig) -> Starlette:
    """The ASGI app serving `endpoint` with the batching and limits of `cfg`."""
    batcher = Batcher(endpoint.run, cfg.max_batch, cfg.max_wait_ms, cfg.queue_size)
    page = resources.files("plmkit.serve").joinpath("page.html").read_text(encoding="utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "task": endpoint.task, "waiting": batcher.waiting,
                             "batches": batcher.batches})

    async def metadata(request: Request) -> Response:
        return JSONResponse(endpoint.metadata())

    async def predict(request: Request) -> Response:
        items, listed = endpoint.items(await read_json(request, cfg.max_body_bytes))
        groups: dict[Any, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(item.group, []).append(i)
        answers: list[Any] = [None] * len(items)
        try:
            parts = await asyncio.gather(*(batcher.submit([items[i].value for i in where], group)
                                           for group, where in groups.items()))
        except QueueFull as err:
            return error(503, f"the server is busy ({err}); retry shortly")
        for where, results in zip(groups.values(), parts, strict=True):
            for i, result in zip(where, results, strict=True):
                answers[i] = {**items[i].shown, **result}
        return JSONResponse({"predictions": answers} if listed else answers[0])

    async def inspect(request: Request) -> Response:
        body = await read_json(request, cfg.max_body_bytes)
        if not isinstance(body, dict):
            raise BadRequest(422, "the body must be a JSON object")
        fields = {k: v for k, v in body.items() if k not in ("method", "task")}
        method = body.get("method", INSPECT_METHODS[0])
        if method not in INSPECT_METHODS:
            raise BadRequest(422, f"method must be one of {', '.join(INSPECT_METHODS)}, got {method!r}")
        item = endpoint.item(fields, 0, "body")
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(batcher.executor, endpoint.inspect, item.value, method)
        return JSONResponse(result)

    routes = [Route("/", index), Route("/health", health), Route("/metadata", metadata),
              Route("/predict", predict, methods=["POST"]), Route("/inspect", inspect, methods=["POST"])]
    handlers = {UserError: _bad_request, HTTPException: _http_error, Exception: _internal_error}
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)


def serve_forever(endpoint: Endpoint, cfg: ServeConfig, sock: socket.socket) -> None:
    """Run the app on uvicorn over a socket already bound (so port 0 is known) until stopped."""
    config = uvicorn.Config(make_app(endpoint, cfg), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, refused with 413 past `limit` bytes before it is parsed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is {int(declared):,} bytes; at most {limit:,} (max_body_bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(413, f"the body is over {limit:,} bytes (max_body_bytes)")
    if not body:
        raise BadRequest(400, "the body is empty: send a JSON object")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise BadRequest(400, f"the body is not valid JSON ({err.msg} at line {err.lineno} "
                         f"column {err.colno})") from None


def error(status: int, message: str) -> JSONResponse:
    """The one error shape: {"error": "one line"}."""
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return error(exc.status if isinstance(exc, BadRequest) else 422, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    reasons = {404: f"no route {request.url.path} (routes: /, /health, /metadata, /predict, /inspect)",
               405: f"{request.method} is not allowed on {request.url.path}"}
    return error(exc.status_code, reasons.get(exc.status_code, str(exc.detail)))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("plmkit serve: %s %s failed", request.method, request.url.path)
    return error(500, f"internal error ({type(exc).__name__}); the server log has the details")
