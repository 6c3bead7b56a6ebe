"""Helpers for the hand-in service's tests: a course, its roster and tokens, the service as a real process
on 127.0.0.1, a Dask cluster of two workers, and raw HTTP requests (to send what the client never would)."""

import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers import released_course, tool_env
from tinytorch_course.examples.build import build

SETTINGS = """
# the hand-in service, for the tests: no refill during a test, a small cap
c.HandInService.refill_seconds = 1e6
c.HandInService.max_bytes = 1048576
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def handin_course(dest: Path, timeout: int | None = 20, extra: str = ""):
    "A released course with the service's test settings."
    course = released_course(dest, timeout=timeout)
    with open(course.root / "nbgrader_config.py", "a") as f:
        f.write(SETTINGS + extra)
    from tinytorch_course.grading.course import Course

    return Course(course.root)


def roster(path: Path, students) -> Path:
    "Canvas's gradebook export for `students` (as `make tokens ROSTER=` reads it)."
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"])
        writer.writerow(["    Points Possible", "", "", "", ""])
        for k, student in enumerate(students):
            writer.writerow([f"Student {k}", str(1000 + k), f"S{k}", student, "A"])
    return path


def cli(course_root, *args, env=None) -> str:
    "Run the instructor's command line in the course folder; its output (it must succeed)."
    run = subprocess.run(
        [sys.executable, "-m", "tinytorch_course.cli", *args],
        cwd=course_root,
        env=tool_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def issue_tokens(course_root, students, db_url=None, instructor="prof") -> dict:
    "{person: token} from `make tokens ROSTER=... ARGS=--instructor prof`, read back from the file it writes."
    before = set(Path(course_root).glob("handin-tokens-*.csv"))
    args = ["tokens", "--roster", str(roster(Path(course_root) / "roster.csv", students))]
    args += ["--instructor", instructor] if instructor else []
    cli(course_root, *args, *(["--db-url", db_url] if db_url else []))
    [written] = set(Path(course_root).glob("handin-tokens-*.csv")) - before
    with open(written, newline="") as f:
        return {row["student"]: row["token"] for row in csv.DictReader(f)}


class Service:
    "The hand-in service as a real process on 127.0.0.1 (`python -m tinytorch_course.service`)."

    def __init__(self, course_root, db_url=None, engine="local", scheduler=None, workers=2, log=None):
        self.root, self.db_url, self.engine, self.scheduler, self.workers = (
            course_root,
            db_url,
            engine,
            scheduler,
            workers,
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log or Path(course_root) / "service.log")
        self.proc = None

    def start(self, timeout: float = 180.0) -> "Service":
        cmd = [sys.executable, "-m", "tinytorch_course.service", "--course", str(self.root), "--port", str(self.port)]
        cmd += ["--workers", str(self.workers)] + (["--db-url", self.db_url] if self.db_url else [])
        cmd += ["--engine", "dask", "--scheduler", self.scheduler] if self.engine == "dask" else []
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=tool_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the service stopped:\n" + self.log.read_text()[-3000:])
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2)
                return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError("the service did not start:\n" + self.log.read_text()[-3000:])

    def kill(self) -> None:
        "SIGKILL, as a crash would: no graceful stop."
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def worker_pids(self) -> list:
        "The local grading processes this service started (its children running service.worker)."
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid and "tinytorch_course.service.worker" in cmdline:
                found.append(int(name))
        return found


def request(url, path, token=None, method="GET", data=None, headers=None, timeout=60) -> tuple:
    "(status, JSON body, headers) of one raw request."
    req = urllib.request.Request(f"{url}{path}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            parsed = json.loads(body or b"{}")
        except ValueError:
            parsed = {"raw": body.decode(errors="replace")}
        return exc.code, parsed, dict(exc.headers)


def submit(url, token, body: bytes, student=None, filename="optimizers.ipynb", nonce=None, when=None) -> tuple:
    "A raw hand-in, as the client sends it, with any header overridden."
    headers = {
        "Content-Type": "application/x-ipynb+json",
        "X-Handin-Student": student if student is not None else (token or "").rsplit(".", 1)[0],
        "X-Handin-Filename": filename,
        "X-Handin-Request": nonce or secrets.token_urlsafe(24),
        "X-Handin-Time": f"{time.time() if when is None else when:.3f}",
    }
    return request(url, "/api/submissions", token, "POST", body, headers)


def verdict(url, token, attempt, timeout=300.0) -> dict:
    "Wait for the verdict of `attempt` (long polls, as the client does); the answer."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body, _ = request(url, f"/api/submissions/{attempt}?wait=20", token, timeout=60)
        assert status == 200, body
        if body.get("verdict"):
            return body
    raise AssertionError(f"no verdict for attempt {attempt} in {timeout} s")


def student_client(url, token, *args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    "`python -m tinytorch_course.student.submit ...` as a student runs it, the service and token in its environment."
    return subprocess.run(
        [sys.executable, "-m", "tinytorch_course.student.submit", *args],
        cwd=cwd,
        env=tool_env(TINYTORCH_SERVICE_URL=url, TINYTORCH_TOKEN=token),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Cluster:
    "A Dask scheduler and two single-threaded workers on 127.0.0.1, each its own process."

    def __init__(self, folder: Path):
        dask = str(Path(sys.executable).with_name("dask"))
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.log = open(folder / "dask.log", "w")
        start = lambda *a: subprocess.Popen([dask, *a], env=tool_env(), stdout=self.log, stderr=self.log)  # noqa: E731
        self.procs = [
            start("scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1], "--no-dashboard")
        ]
        self.workers = [
            start(
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                f"w{k}",
                "--local-directory",
                str(folder / f"w{k}"),
            )
            for k in (1, 2)
        ]
        self.procs += self.workers
        from distributed import Client

        with Client(self.address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.log.close()


def variant(course_root, example: str, tag: str, damaged: bool = False) -> bytes:
    """Example submission `example` made unique by a trailing note (each hand-in new bytes). `damaged` spoils
    one graded cell's metadata: the grader gives it 0 ("unreadable") in a tenth of a second, without a
    kernel, so a test can send many hand-ins that each still take the grader's whole path."""
    nb = json.loads(build(example, course_root))
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": f"hand-in {tag}"})
    if damaged:
        cell = next(c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade"))
        cell["metadata"]["nbgrader"]["points"] = "lots"
    return json.dumps(nb).encode()


HAND_IN_MARKDOWN = """## Hand in

Save the notebook first (Ctrl+S): the hand-in sends the file saved on disk, and the cell below
checks that you saved after the last cell you ran. The first time, it asks for the token your
instructor gave you.

At once you get a receipt: the attempt number, the sha256 of the bytes the service stored (your
file's) and the service's time. Seconds later you get the verdict: your autograded points and every
hidden check by name, passed or failed, with the grader's message. Your written answers are graded by
your instructor. You may hand in again; the same file twice costs nothing. In a terminal:
`python -m tinytorch_course.submit` (and `--feedback` for your feedback page, once published)."""
HAND_IN_CODE = "from tinytorch_course.student.submit import hand_in\n\nhand_in()"


def with_hand_in_cell(nb: dict) -> dict:
    "The notebook with the *Hand in* section at its end (as the source has it), added if it is missing."
    if any("hand_in()" in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"):
        return nb
    nb["cells"] += [
        {"cell_type": "markdown", "id": "hand-in-md", "metadata": {}, "source": HAND_IN_MARKDOWN},
        {
            "cell_type": "code",
            "id": "hand-in",
            "execution_count": None,
            "metadata": {"tags": ["demo"]},
            "outputs": [],
            "source": HAND_IN_CODE,
        },
    ]
    return nb
