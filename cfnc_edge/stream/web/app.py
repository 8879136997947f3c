"""The page's web application (Starlette): the page, its state, live frames over a WebSocket, reviews.

    GET  /                    the page (static/index.html; its script and style are served from the package)
    GET  /api/state           counts, latency, timelines, gallery, review counts (JSON)
    GET  /api/item/{id}.jpg   a reviewable frame with its heatmap
    POST /api/review/{id}     {"label": "good" | "defect"}: save the original frame and its record
    WS   /ws/live/{source}    the source's newest annotated frame, as a JSON line then a JPEG, again and again

Security: with a token every request (the WebSocket too) must carry it, as
`Authorization: Bearer TOKEN` or `?token=TOKEN`; unbound to a non-local
address, the sink refuses to start without one (server.py). On a loopback
address the Host header must name this machine (a page elsewhere cannot reach
it through DNS rebinding), and a review must be posted as JSON, which a form
of another site cannot send without the browser asking first (CORS).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from cfnc_edge.errors import CfncError
from cfnc_edge.stream.web.board import Board

STATIC = Path(__file__).resolve().parent / "static"
POLL_S = 0.02  # how often a live connection looks for a newer frame


class TokenGuard:
    """ASGI middleware: refuse every HTTP request and WebSocket without the token."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token.encode()

    def _carries(self, scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip()
        if not given:
            given = (parse_qs(scope.get("query_string", b"").decode()).get("token") or [""])[0].encode()
        return hmac.compare_digest(given, self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or self._carries(scope):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await PlainTextResponse("this page needs its token: open it as http://HOST:PORT/?token=TOKEN",
                                status_code=401)(scope, receive, send)


def make_app(board: Board, token: str | None, local: bool) -> Starlette:
    # pictures are rendered in two threads of their own, not Starlette's pool of 40: each thread that
    # allocates frame-sized buffers keeps a malloc arena: with 40 the soak run's RSS grew 16-36 MiB/min, with 2 by ~2
    workers = ThreadPoolExecutor(2, thread_name_prefix="web-render")

    async def in_worker(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(workers, fn, *args)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse(await in_worker(board.state), headers={"Cache-Control": "no-store"})

    async def item(request: Request) -> Response:
        data = await in_worker(board.item_jpeg, request.path_params["item"])
        return Response(data, media_type="image/jpeg") if data else PlainTextResponse("no such frame", 404)

    async def review(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return PlainTextResponse("post the review as JSON", 415)
        try:
            label = (await request.json()).get("label")
            saved = await in_worker(board.review, request.path_params["item"], label)
        except (ValueError, AttributeError):
            return PlainTextResponse('give {"label": "good"} or {"label": "defect"}', 400)
        except CfncError as exc:
            return PlainTextResponse(str(exc), 400)
        return JSONResponse(saved) if saved is not None else PlainTextResponse("no such frame (any more)", 404)

    async def live(ws: WebSocket) -> None:
        source = ws.path_params["source"]
        await ws.accept()
        last = 0
        try:
            while not board.closed:
                got = board.newest(source)
                if got is None or got[0] == last:
                    await asyncio.sleep(POLL_S)
                    continue
                seq, v = got
                # a slow browser holds this send; the frames that came meanwhile are skipped, and counted
                picture, info = await in_worker(board.live_view, v)
                board.count_view(seq - last - 1 if last else 0)
                await ws.send_text(json.dumps({**info, "seq": seq}))
                await ws.send_bytes(picture)
                last = seq
            await ws.close()
        except (WebSocketDisconnect, RuntimeError):  # the browser left, or the server is stopping
            return

    routes = [Route("/", index), Route("/api/state", state), Route("/api/item/{item}.jpg", item),
              Route("/api/review/{item}", review, methods=["POST"]), WebSocketRoute("/ws/live/{source:int}", live),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])] if local else []
    if token:
        middleware.insert(0, Middleware(TokenGuard, token=token))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.workers = workers  # WebServer.stop shuts them down
    return app
