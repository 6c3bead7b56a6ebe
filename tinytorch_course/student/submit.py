"""Hand in: send the saved notebook to the course's hand-in service and see the hidden checks' verdict.

    python -m tinytorch_course.student.submit               # hand in modules/07_optimizers/optimizers.ipynb
    python -m tinytorch_course.student.submit --feedback    # fetch your feedback page, once published
    python -m tinytorch_course.student.submit --status      # your hand-ins so far

or, in the notebook's last section, the *Hand in* cell: `hand_in()`.

It sends exactly the file saved on disk (in the notebook, it first checks that you saved after the
last cell you ran), shows the receipt as soon as the service has stored it (the attempt number, the
sha256 of the bytes the service stored, which must be your file's, and the service's time), then
waits for the verdict: your autograded points and every hidden check by name with pass or fail and
the grader's message (as your course discloses them). Written answers are graded by your instructor.
The same file sent twice gets the same receipt and grade, and costs nothing.

Your token (from your instructor) is read from `TINYTORCH_TOKEN`, else from `~/.tinytorch/token`,
else asked for once and kept there (readable by you only; never in the notebook). It needs only the
Python standard library, and IPython when run in a notebook.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import html
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]  # the student repository's top folder
SERVICE = HERE / "service.json"  # {"url": ...}, written by the course's `make release`
NOTEBOOK = Path("modules") / "07_optimizers" / "optimizers.ipynb"
TOKEN_FILE = Path("~/.tinytorch/token")
WAIT = 20  # seconds the service may hold each request for the verdict
PATIENCE = 15 * 60  # seconds to wait for a verdict before saying how to come back for it


class HandInError(Exception):
    "Something the student must act on, in one sentence."


# ---- where, who, what ------------------------------------------------------------------------------
def service_url() -> str | None:
    if os.environ.get("TINYTORCH_SERVICE_URL"):
        return os.environ["TINYTORCH_SERVICE_URL"].rstrip("/")
    if SERVICE.exists():
        url = json.loads(SERVICE.read_text()).get("url")
        return url.rstrip("/") if url else None
    return None


def token(ask: bool = True) -> str:
    "The student's token: TINYTORCH_TOKEN, ~/.tinytorch/token, or asked for (and kept, readable by you only)."
    if os.environ.get("TINYTORCH_TOKEN"):
        return os.environ["TINYTORCH_TOKEN"].strip()
    path = TOKEN_FILE.expanduser()
    if path.exists():
        return path.read_text().strip()
    if not ask:
        raise HandInError("No hand-in token: set TINYTORCH_TOKEN or run the hand-in cell once.")
    try:
        given = getpass.getpass("Your hand-in token (from your instructor; it is not shown): ").strip()
    except Exception:  # no way to ask (a notebook run without a person)
        raise HandInError("No hand-in token, and no way to ask for one here: set TINYTORCH_TOKEN.") from None
    if "." not in given:
        raise HandInError("That does not look like a hand-in token: paste the whole line your instructor gave you.")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(given + "\n")
    return given


def forget_token() -> None:
    "A saved token the service refused is removed, so the next hand-in asks again."
    path = TOKEN_FILE.expanduser()
    if path.exists() and not os.environ.get("TINYTORCH_TOKEN"):
        path.unlink()


def kernel():
    "The IPython shell of the notebook's kernel, or None outside a notebook."
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and hasattr(shell, "kernel") else None


def _process_start() -> float | None:
    "When this process started (seconds since the epoch), from /proc; None elsewhere."
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def unsaved(path: Path, data: bytes) -> str | None:
    """Why the file on disk is older than the last cell run in this notebook's kernel, or None. Outside a
    notebook there is no kernel to ask, and nothing is said."""
    shell = kernel()
    if shell is None:
        return None
    current = getattr(getattr(shell, "displayhook", None), "prompt_count", None) or shell.execution_count - 1
    last_run = current - 1  # the cell run before this one
    try:
        saved = max(
            (c.get("execution_count") or 0 for c in json.loads(data).get("cells", []) if c.get("cell_type") == "code"),
            default=0,
        )
    except ValueError:
        return None  # not JSON: the service will say so
    started = _process_start()
    if last_run > saved or (last_run >= 1 and started is not None and path.stat().st_mtime < started):
        return (
            f"You ran cells after you last saved {path.name} (your last run cell is [{last_run}], the saved file "
            f"goes up to [{saved}]). Save it first (Ctrl+S, or File > Save Notebook), then run this cell again: "
            "the hand-in sends the file on disk."
        )
    return None


# ---- talking to the service ------------------------------------------------------------------------
def call(method: str, url: str, secret: str, data: bytes | None = None, headers=None, timeout: float = 60):
    "(status, JSON body) of one request; network failures raise URLError."
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {secret}")
    request.add_header("User-Agent", "tinytorch-submit/1")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read() or b"{}")
        except ValueError:
            body = {}
        return exc.code, body


def send(url: str, secret: str, data: bytes, tries: int = 4) -> dict:
    "Send the notebook; the receipt. Retries a lost connection with the same request id (never charged twice)."
    student = secret.rsplit(".", 1)[0]
    headers = {
        "Content-Type": "application/x-ipynb+json",
        "X-Handin-Student": student,
        "X-Handin-Filename": NOTEBOOK.name,
        "X-Handin-Request": secrets.token_urlsafe(24),
    }
    for attempt in range(tries):
        headers["X-Handin-Time"] = f"{time.time():.3f}"
        try:
            status, body = call("POST", f"{url}/api/submissions", secret, data, headers)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt + 1 == tries:
                raise HandInError(
                    f"Could not reach the hand-in service at {url} ({exc}). Try again in a minute."
                ) from None
            time.sleep(2**attempt)
            continue
        if status in (200, 201):
            return body["receipt"]
        if status == 409 and body.get("receipt"):  # our own retry of a request the service had stored
            return body["receipt"]
        if status == 401:
            forget_token()
        wait = f" (retry in {body['retry_after']:.0f} s)" if body.get("retry_after") is not None else ""
        raise HandInError(f"{body.get('error', f'The hand-in service answered {status}.')}{wait}")
    raise HandInError("unreachable")


def wait_for_verdict(url: str, secret: str, attempt: int, show) -> dict:
    "Poll (each request held by the service up to WAIT s) until the verdict; `show` is told the queue position."
    deadline = time.monotonic() + PATIENCE
    while True:
        try:
            status, body = call("GET", f"{url}/api/submissions/{attempt}?wait={WAIT}", secret, timeout=WAIT + 30)
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            status, body = 0, {}
        if status == 200 and body.get("verdict"):
            return body
        if status not in (0, 200):
            raise HandInError(body.get("error", f"The hand-in service answered {status}."))
        if time.monotonic() > deadline:
            raise HandInError(
                f"No verdict after {PATIENCE // 60} minutes: your hand-in (attempt {attempt}) is stored. "
                "Run this again later to see it (the same file costs nothing)."
            )
        show(body)


# ---- what the student sees -------------------------------------------------------------------------
def receipt_text(receipt: dict, local_sha: str) -> str:
    same = "the bytes of your saved file" if receipt["sha256"] == local_sha else "NOT your file's bytes: hand in again"
    again = " (already received: this file was handed in before, nothing was charged)" if receipt.get("again") else ""
    return (
        f"Received: attempt {receipt['attempt']} at {receipt['received_at']} (server time){again}\n"
        f"  sha256 {receipt['sha256']}: {same}"
    )


def verdict_text(answer: dict) -> str:
    v = answer["verdict"]
    lines = []
    if v["status"] != "graded":
        lines.append(f"Not graded ({v['status']}): {v['reason']}")
    lines.append(f"Autograded: {v['points']:g} of {v['max_points']:g} points")
    lines += [f"  note: {e}" for e in v["events"]]
    for cell in v["cells"]:
        lines.append(f"  {cell['cell']}: {cell['points']:.3g} of {cell['max']:g}")
        for check in cell.get("checks", []):
            mark = "pass" if check["passed"] else "FAIL"
            message = f": {check['message']}" if check.get("message") and not check["passed"] else ""
            lines.append(f"      {mark}  {check['check']}{message}")
    written = sum(w["max"] for w in v["written"])
    if written:
        lines.append(f"Written answers ({written:g} points): graded by your instructor.")
    return "\n".join(lines)


def receipt_html(receipt: dict, local_sha: str) -> str:
    esc = html.escape
    same = receipt["sha256"] == local_sha
    return (
        f'<div class="tt-handin-receipt"><b>Received</b>: attempt <b>{int(receipt["attempt"])}</b> at '
        f"{esc(receipt['received_at'])} (server time)"
        + (" &mdash; already received before: nothing was charged" if receipt.get("again") else "")
        + f"<br><code>sha256 {esc(receipt['sha256'])}</code> "
        + ("&#10003; the bytes of your saved file" if same else "<b>not your file's bytes: hand in again</b>")
        + "</div>"
    )


LEFT = ' style="text-align:left"'  # JupyterLab right-aligns table cells


def verdict_html(answer: dict) -> str:
    esc = html.escape
    v = answer["verdict"]
    rows = []
    for cell in v["cells"]:
        checks = cell.get("checks") or [None]
        for i, check in enumerate(checks):
            head = (
                f'<td rowspan="{len(checks)}"><code>{esc(cell["cell"])}</code></td>'
                f'<td rowspan="{len(checks)}">{cell["points"]:.3g} / {cell["max"]:g}</td>'
                if i == 0
                else ""
            )
            if check is None:
                rows.append(f"<tr>{head}<td></td><td></td><td></td></tr>")
                continue
            mark = "&#10003; pass" if check["passed"] else "&#10007; fail"
            message = esc(check.get("message", "")) if not check["passed"] else ""
            rows.append(f"<tr>{head}<td{LEFT}>{esc(check['check'])}</td><td>{mark}</td><td{LEFT}>{message}</td></tr>")
    written = "".join(
        f"<tr><td><code>{esc(w['cell'])}</code></td><td>&ndash; / {w['max']:g}</td>"
        f'<td colspan="3">{esc(w["note"])}</td></tr>'
        for w in v["written"]
    )
    status = "" if v["status"] == "graded" else f"<p><b>Not graded ({esc(v['status'])})</b>: {esc(v['reason'])}</p>"
    notes = "".join(f"<li>{esc(e)}</li>" for e in v["events"])
    return (
        f'<div class="tt-handin-verdict">{status}<p><b>Autograded: {v["points"]:g} of {v["max_points"]:g} '
        f"points</b> (in {answer.get('seconds_to_verdict', 0):.1f} s)</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + '<table class="tt-handin-table"><thead><tr><th>cell</th><th>points</th><th>hidden check</th>'
        f"<th>result</th><th>message</th></tr></thead><tbody>{''.join(rows)}{written}</tbody></table></div>"
    )


class Screen:
    "Shows text in a terminal, and HTML (with the text as its plain form) in a notebook, updating in place."

    def __init__(self):
        self.shell = kernel()
        self.handle = None

    def show(self, text: str, markup: str | None = None, update: bool = False) -> None:
        if self.shell is None:
            print(text, flush=True)
            return
        from IPython.display import display

        bundle = {"text/plain": text, "text/html": markup or f"<pre>{html.escape(text)}</pre>"}
        if update and self.handle is not None:
            self.handle.update(bundle, raw=True)
        else:
            self.handle = display(bundle, raw=True, display_id=True)


# ---- the two ways in -------------------------------------------------------------------------------
def hand_in(notebook=None, wait: bool = True) -> None:
    "The *Hand in* cell: hand in the saved notebook and show the receipt, then the verdict."
    run(notebook, wait)


def run(notebook=None, wait: bool = True) -> dict | None:
    "Hand in and show what happened; {'receipt', 'verdict'} (the verdict None without `wait`), or None on failure."
    screen = Screen()
    try:
        return _hand_in(Path(notebook) if notebook else REPO / NOTEBOOK, wait, screen)
    except HandInError as exc:
        screen.show(
            f"Not handed in: {exc}",
            f'<div class="tt-handin-error"><b>Not handed in</b>: {html.escape(str(exc))}</div>',
        )
        return None


def _hand_in(path: Path, wait: bool, screen: Screen) -> dict:
    url = service_url()
    if url is None:
        raise HandInError("this copy of the course has no hand-in service; hand in the way your course says.")
    if not path.exists():
        raise HandInError(f"{path} does not exist: the service takes {NOTEBOOK}.")
    data = path.read_bytes()
    why = unsaved(path, data)
    if why:
        raise HandInError(why)
    secret = token()
    local_sha = hashlib.sha256(data).hexdigest()
    receipt = send(url, secret, data)
    screen.show(receipt_text(receipt, local_sha), receipt_html(receipt, local_sha))
    if not wait:
        return {"receipt": receipt, "verdict": None}
    queue = Screen()

    def waiting(body):
        if body.get("position"):
            line = f"In the queue: position {body['position']}, verdict in about {body['estimate_seconds']:.0f} s"
        else:
            line = "Grading now..."
        queue.show(line, f'<div class="tt-handin-queue">{html.escape(line)}</div>', update=True)

    answer = wait_for_verdict(url, secret, receipt["attempt"], waiting)
    queue.show(verdict_text(answer), verdict_html(answer), update=True)
    return {"receipt": receipt, "verdict": answer["verdict"]}


def fetch_feedback(out=None) -> Path | None:
    "Save your published feedback page to feedback/optimizers.html (or `out`); its path, or None."
    screen = Screen()
    try:
        url = service_url()
        if url is None:
            raise HandInError("this copy of the course has no hand-in service.")
        status, body = call("GET", f"{url}/api/feedback", token())
        if status != 200:
            raise HandInError(body.get("error", f"The hand-in service answered {status}."))
        path = Path(out) if out else REPO / "feedback" / "optimizers.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body["html"])
    except HandInError as exc:
        screen.show(f"No feedback: {exc}")
        return None
    screen.show(f"Your feedback page is saved in {path}\nOpen it (in JupyterLab: double-click it in the file browser).")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinytorch_course.student.submit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("notebook", nargs="?", default=str(REPO / NOTEBOOK))
    parser.add_argument("--feedback", action="store_true", help="fetch your feedback page, once it is published")
    parser.add_argument("--status", action="store_true", help="list your hand-ins")
    parser.add_argument("--no-wait", action="store_true", help="show the receipt, do not wait for the verdict")
    parser.add_argument("--out", default=None, help="with --feedback: where to save it (feedback/optimizers.html)")
    args = parser.parse_args(argv)
    if args.feedback:
        return 0 if fetch_feedback(args.out) else 1
    if args.status:
        url = service_url()
        if url is None:
            print("This copy of the course has no hand-in service.")
            return 1
        status, body = call("GET", f"{url}/api/submissions", token())
        if status != 200:
            print(body.get("error", f"The hand-in service answered {status}."))
            return 1
        for r in body["attempts"]:
            print(f"attempt {r['attempt']}: {r['received_at']}  sha256 {r['sha256'][:16]}...  {r['state']}")
        return 0
    return 0 if run(args.notebook, wait=not args.no_wait) is not None else 1


if __name__ == "__main__":
    sys.exit(main())
