"""The hand-in service's HTTP routes (Starlette, served by uvicorn). Each route checks the request, calls
the store or the queue, and answers; nothing is decided here that a test without HTTP could not see.

Students (`Authorization: Bearer <their token>`; the client is `tinytorch_course.student.submit`):

    POST /api/submissions             the notebook's bytes; headers name the student, the file, a request
                                      id and the request's time. 201 and a receipt once stored (200 and
                                      the same receipt for bytes already stored); 400 not a notebook, a bad
                                      file name or a stale request; 401 token; 403 another student;
                                      409 a replayed request; 413 too large; 429 bucket empty; 503 queue full
    GET  /api/submissions             every receipt of this student
    GET  /api/submissions/<attempt>   the receipt, its place in the queue, and the verdict once there is
                                      one (`?wait=25` holds the request until then, at most 25 s)
    GET  /api/feedback                this student's feedback page, once the instructor has published it

The instructor (an instructor token; the status page signs in with it and keeps it in an HttpOnly cookie):

    GET  /status, /login; POST /login, /logout     the status page
    GET  /api/status                                the same, as JSON
    PUT/DELETE /api/feedback/<student>              publish or withdraw a student's feedback page

Every response carries a Content-Security-Policy that runs no script, and `nosniff`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import shutil
import time
import urllib.parse
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from . import pages, queue
from .settings import HandInService, store_url
from .store import DONE, FAILED, INSTRUCTOR, STUDENT, Identity, Refused, Store, receipt, result_of
from .verdict import Layout, layout, public

log = logging.getLogger("tinytorch.handin")
NOTEBOOK_FILE = "optimizers.ipynb"
COOKIE = "handin_instructor"
MAX_WAIT = 25.0
POLL = 2.0  # a held request looks at the store this often, and at once when this server writes its verdict
HEADERS = {
    "Content-Security-Policy": pages.CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Bell:
    """Rings the requests waiting on one attempt when the dispatcher writes its verdict (or puts it back in
    the queue), so they look at once and the others do not look at all. Only a hint: a request that
    misses it (a verdict another server wrote) looks again within POLL s, and a restart loses nothing."""

    def __init__(self):
        self.loop, self.waiting = None, {}  # (student, attempt) -> asyncio.Event

    def event(self, student: str, attempt: int) -> asyncio.Event:
        "What a request waiting on this attempt waits for; taken before it looks, so no ring is missed."
        return self.waiting.setdefault((student, attempt), asyncio.Event())

    def ring(self, student: str, attempt: int) -> None:  # from the dispatcher's thread
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._ring, (student, attempt))

    def _ring(self, key) -> None:
        event = self.waiting.pop(key, None)
        if event is not None:
            event.set()


def error(exc: Refused) -> JSONResponse:
    body = {"error": exc.message}
    headers = dict(HEADERS)
    if exc.retry_after is not None:
        body["retry_after"] = round(exc.retry_after, 1)
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if exc.receipt is not None:
        body["receipt"] = exc.receipt
    return JSONResponse(body, status_code=exc.status, headers=headers)


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def identify(request: Request, role: str) -> Identity:
    who = await run_in_threadpool(request.app.state.store.authenticate, bearer(request))
    if who.role != role:
        raise Refused(403, f"This needs a {role} token.")
    return who


async def read_body(request: Request, cap: int, what: str) -> bytes:
    "The request's body, refused with 413 as soon as it is known to pass `cap` bytes."
    too_big = Refused(413, f"The {what} is larger than the service accepts ({cap / 2**20:.1f} MiB).")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def check_notebook(body: bytes, where: Layout) -> None:
    "Refuse (400) what is not this assignment's notebook: not UTF-8 JSON, not nbformat 4, no graded cell of ours."
    import nbformat

    try:
        nb = nbformat.reads(body.decode("utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise Refused(400, f"This is not a readable notebook ({first}): nothing was stored.") from None
    ours = {cell for cell, _ in where.auto + where.written}
    found = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells}
    if not ours & found:
        raise Refused(400, f"This notebook is not {NOTEBOOK_FILE} of this assignment (none of its graded cells).")


def check_headers(request: Request, who: Identity, skew: float) -> str:
    "The request id, once the headers name this student, the notebook's file name and a time near ours."
    named = request.headers.get("x-handin-student", "")
    if named != who.person:
        raise Refused(
            403,
            f"This token belongs to {who.person}, not {named or 'nobody'}: a token hands in only for its own student.",
        )
    filename = request.headers.get("x-handin-filename", "")
    if filename != NOTEBOOK_FILE:
        raise Refused(400, f"The file must be {NOTEBOOK_FILE}, with no folder in its name (got {filename[:80]!r}).")
    try:
        sent = float(request.headers.get("x-handin-time", ""))
    except ValueError:
        raise Refused(400, "The request does not say when it was made (X-Handin-Time).") from None
    if not math.isfinite(sent) or abs(time.time() - sent) > skew:
        raise Refused(
            400,
            f"This request was made {abs(time.time() - sent):.0f} s away from the server's time: a replay, "
            "or this computer's clock is wrong. Nothing was stored.",
        )
    return request.headers.get("x-handin-request", "")


async def submit(request: Request) -> Response:
    state = request.app.state
    try:
        who = await identify(request, STUDENT)
        nonce = check_headers(request, who, state.settings.clock_skew)
        body = await read_body(request, state.settings.max_bytes, "notebook")
        await run_in_threadpool(check_notebook, body, state.layout)
        stored, new = await run_in_threadpool(queue.accept, state.store, who.person, body, nonce)
    except Refused as exc:
        return error(exc)
    if new and state.dispatcher is not None:
        state.dispatcher.wake()
    link = f"/api/submissions/{stored['attempt']}"
    return JSONResponse({"receipt": stored, "verdict": link}, status_code=201 if new else 200, headers=HEADERS)


async def attempts(request: Request) -> Response:
    try:
        who = await identify(request, STUDENT)
    except Refused as exc:
        return error(exc)
    return JSONResponse(
        {"attempts": await run_in_threadpool(request.app.state.store.attempts, who.person)}, headers=HEADERS
    )


async def attempt(request: Request) -> Response:
    state = request.app.state
    try:
        who = await identify(request, STUDENT)
        number = int(request.path_params["attempt"])
        wait = min(MAX_WAIT, max(0.0, float(request.query_params.get("wait", "0"))))
    except Refused as exc:
        return error(exc)
    except ValueError:
        return error(Refused(400, "wait must be a number of seconds."))
    deadline = time.monotonic() + wait
    while True:
        ring = state.bell.event(who.person, number)
        row, position, estimate = await run_in_threadpool(queue.place, state.store, who.person, number)
        if row is None:
            return error(Refused(404, f"You have no attempt {number}."))
        if row.state in (DONE, FAILED) or time.monotonic() >= deadline:
            break
        try:
            await asyncio.wait_for(ring.wait(), min(POLL, max(0.0, deadline - time.monotonic())))
        except asyncio.TimeoutError:
            pass
    if row.state in (DONE, FAILED):
        state.bell.waiting.pop((who.person, number), None)  # nothing will ring for it again
    answer = {"receipt": receipt(row), "state": row.state}
    if position is not None:
        answer |= {"position": position + 1, "estimate_seconds": round(estimate, 1)}
    stored = result_of(row)
    if stored is not None:
        answer["verdict"] = public(stored, state.layout, state.settings.disclose)
        answer["seconds_to_verdict"] = round(row.verdict_at - row.received_at, 2)
    return JSONResponse(answer, headers=HEADERS)


async def student_feedback(request: Request) -> Response:
    try:
        who = await identify(request, STUDENT)
    except Refused as exc:
        return error(exc)
    found = await run_in_threadpool(request.app.state.store.feedback_page, who.person)
    if found is None:
        return error(Refused(404, "Your instructor has not published feedback for you yet."))
    html, published = found
    return JSONResponse({"html": html, "published_at": published}, headers=HEADERS)


async def publish_feedback(request: Request) -> Response:
    store = request.app.state.store
    try:
        await identify(request, INSTRUCTOR)
        student = request.path_params["student"]
        if (await run_in_threadpool(store.people)).get(student) != STUDENT:
            raise Refused(404, f"No student {student!r} holds a token.")
        if request.method == "DELETE":
            await run_in_threadpool(store.withdraw, student)
            return JSONResponse({"withdrawn": student}, headers=HEADERS)
        body = await read_body(request, 8 * request.app.state.settings.max_bytes, "feedback page")
        await run_in_threadpool(store.publish, student, body.decode("utf-8", errors="replace"))
    except Refused as exc:
        return error(exc)
    return JSONResponse({"published": student}, headers=HEADERS)


async def status_json(request: Request) -> Response:
    try:
        await identify(request, INSTRUCTOR)
    except Refused as exc:
        return error(exc)
    return JSONResponse(await run_in_threadpool(queue.status, request.app.state.store), headers=HEADERS)


async def instructor_cookie(request: Request) -> bool:
    token = request.cookies.get(COOKIE)
    if not token:
        return False
    try:
        return (await run_in_threadpool(request.app.state.store.authenticate, token)).role == INSTRUCTOR
    except Refused:
        return False


async def status_page(request: Request) -> Response:
    if not await instructor_cookie(request):
        return RedirectResponse("/login", status_code=303, headers=HEADERS)
    info = await run_in_threadpool(queue.status, request.app.state.store)
    return HTMLResponse(pages.status(info, request.app.state.course_name), headers=HEADERS)


async def login(request: Request) -> Response:
    if request.method == "GET":
        return HTMLResponse(pages.login(), headers=HEADERS)
    try:
        form = urllib.parse.parse_qs((await read_body(request, 4096, "form")).decode("utf-8", errors="replace"))
        token = (form.get("token") or [""])[0].strip()
        who = await run_in_threadpool(request.app.state.store.authenticate, token)
        if who.role != INSTRUCTOR:
            raise Refused(403, "That is a student token: the status page needs an instructor token.")
    except Refused as exc:
        return HTMLResponse(pages.login(exc.message), status_code=exc.status, headers=HEADERS)
    response = RedirectResponse("/status", status_code=303, headers=HEADERS)
    response.set_cookie(
        COOKIE, token, max_age=8 * 3600, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")
    return response


async def style(request: Request) -> Response:
    return Response(pages.STYLE, media_type="text/css", headers=HEADERS)


async def favicon(request: Request) -> Response:
    return Response(status_code=204, headers=HEADERS)


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True}, headers=HEADERS)


async def not_found(request: Request, exc) -> Response:
    status = getattr(exc, "status_code", 404)
    return JSONResponse({"error": "No such page."}, status_code=status, headers=HEADERS)


ROUTES = [
    Route("/api/submissions", submit, methods=["POST"]),
    Route("/api/submissions", attempts, methods=["GET"]),
    Route("/api/submissions/{attempt:int}", attempt, methods=["GET"]),
    Route("/api/feedback", student_feedback, methods=["GET"]),
    Route("/api/feedback/{student}", publish_feedback, methods=["PUT", "DELETE"]),
    Route("/api/status", status_json, methods=["GET"]),
    Route("/status", status_page, methods=["GET"]),
    Route("/login", login, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/style.css", style, methods=["GET"]),
    Route("/healthz", health, methods=["GET"]),
    Route("/favicon.ico", favicon, methods=["GET"]),
]


def create_app(
    course_root=".",
    db_url: str | None = None,
    engine: str = "local",
    workers: int = 0,
    scheduler: str | None = None,
    sandbox: bool = True,
    grading: bool = True,
) -> Starlette:
    """The service for the course at `course_root`: its store (`db_url`, else the course setting, else
    sqlite `handin.db` at the course root) and, with `grading`, a dispatcher and its engine."""
    from ..grading.course import ASSIGNMENT, Course

    course = Course(course_root)
    settings = HandInService(config=course.config)
    url = store_url(course, db_url)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        from .dispatch import Dispatcher, make_engine, scratch_folder

        state = app.state
        state.settings, state.course_name = settings, course.course_id
        state.store = Store(url, settings)
        state.layout = layout(course.root / course.coursedir.source_directory / ASSIGNMENT / NOTEBOOK_FILE)
        state.bell = Bell()
        state.bell.loop = asyncio.get_running_loop()
        state.dispatcher, scratch = None, None
        if grading:
            scratch = scratch_folder()
            build = lambda: make_engine(course, settings, scratch, engine, workers, scheduler, sandbox)  # noqa: E731
            state.dispatcher = Dispatcher(state.store, build, on_verdict=state.bell.ring)
            state.dispatcher.start()
            await run_in_threadpool(state.dispatcher.started)
        log.info(
            "hand-in service for %s: store %s, engine %s",
            course.root,
            url.split("@")[-1],
            engine if grading else "none",
        )
        try:
            yield
        finally:
            if state.dispatcher is not None:
                await run_in_threadpool(state.dispatcher.stop)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            state.store.close()

    return Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
