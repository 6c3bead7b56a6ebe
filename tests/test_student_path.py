"""The student's path, step by step as a student meets it: Binder's environment, the notebook run
with stubs and completed, the export into the student's own package, module 08 training on top of
that package, and the notebook in a real JupyterLab in headless Chromium."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ASSIGNMENT, ROOT, completed_notebook, notebook_errors, printed_text

pytestmark = pytest.mark.slow
NOTEBOOK = Path("modules") / ASSIGNMENT / "optimizers.ipynb"
STYLE = "seed-style-out-of-place"  # a correct solution written unlike the reference...
STYLE_LINE = "bias_correction1 = 1 - self.beta1 ** self.step_count"  # ...with a line the reference lacks
GRADED_CELLS = 14
RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=600, allow_errors=True, kernel_name="python3",
               resources={"metadata": {"path": sys.argv[3]}}).execute()
nbformat.write(nb, sys.argv[2])
"""


@pytest.fixture(scope="module")
def my_repo(student_repo, tmp_path_factory):
    "A student's own copy of the student repository (the session's copy stays pristine for other tests)."
    return Path(shutil.copytree(student_repo, tmp_path_factory.mktemp("student") / "tinytorch-student", symlinks=True))


@pytest.fixture(scope="module")
def binder_env(my_repo, tmp_path_factory):
    "(python, env) of a fresh virtual environment holding exactly what binder/ installs, postBuild included."
    venv = tmp_path_factory.mktemp("binder") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["JUPYTER_PATH"] = env["JUPYTER_DATA_DIR"] = str(venv / "share" / "jupyter")  # no kernels from elsewhere
    subprocess.run(
        ["python", "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"], cwd=my_repo, env=env, check=True
    )
    subprocess.run(["binder/postBuild"], cwd=my_repo, env=env, check=True)  # executable, as repo2docker runs it
    return venv / "bin" / "python", env


def run_in_binder(binder_env, repo: Path, notebook: Path, out: Path) -> dict:
    "Execute `notebook` (relative to `repo`) in its folder with the Binder environment's kernel."
    python, env = binder_env
    subprocess.run(
        [str(python), "-c", RUNNER, str(repo / notebook), str(out), str((repo / notebook).parent)],
        env=env,
        check=True,
        timeout=900,
    )
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def completed(my_repo, binder_env, tmp_path_factory):
    "The student notebook completed in another correct style, saved, then run top to bottom on 'Binder'."
    path = my_repo / NOTEBOOK
    path.write_text(json.dumps(completed_notebook(json.loads(path.read_text()), STYLE), indent=1) + "\n")
    return run_in_binder(binder_env, my_repo, NOTEBOOK, tmp_path_factory.mktemp("run") / "completed.ipynb")


def test_binder_folder_follows_repo2docker(my_repo):
    binder = my_repo / "binder"
    assert sorted(p.name for p in binder.iterdir()) == [
        "postBuild",
        "requirements.txt",
        "runtime.txt",
    ]  # one environment file
    post_build = (binder / "postBuild").read_text().splitlines()
    assert post_build[:2] == ["#!/bin/bash", "set -e"] and os.access(binder / "postBuild", os.X_OK)
    assert any("pip install" in line and line.rstrip().endswith(" .") for line in post_build)
    pins = [
        line for line in (binder / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert pins and all("==" in line for line in pins), "every requirement pinned"
    readme = (my_repo / "README.md").read_text()
    assert f"?urlpath=lab/tree/{NOTEBOOK}" in readme


def test_stub_notebook_fails_only_with_not_implemented(student_repo, my_repo, binder_env, tmp_path):
    stubs = NOTEBOOK.with_name("stubs.ipynb")  # the released notebook as a student first opens it
    shutil.copy(student_repo / NOTEBOOK, my_repo / stubs)
    nb = run_in_binder(binder_env, my_repo, stubs, tmp_path / "stubs.ipynb")
    errors = notebook_errors(nb)
    assert errors, "the stubs should raise"
    assert {name for _, name, _ in errors} == {"NotImplementedError"}, errors


def test_completed_notebook_passes_every_visible_test(completed):
    assert notebook_errors(completed) == []
    assert printed_text(completed).count("Visible checks passed") == GRADED_CELLS


def test_export_cell_puts_the_students_code_in_their_package(completed, my_repo, binder_env):
    python, env = binder_env
    probe = "import inspect, tinytorch.core.optimizers as o; print(o.__file__); print(inspect.getsource(o.Adam))"
    result = subprocess.run([str(python), "-c", probe], cwd="/", env=env, capture_output=True, text=True, check=True)
    assert result.stdout.startswith(str(my_repo / "tinytorch")), result.stdout[:200]
    assert STYLE_LINE in result.stdout, "the package should hold the student's Adam, not the instructor's"
    exported = (my_repo / "tinytorch" / "core" / "optimizers.py").read_text()
    assert "NotImplementedError()" not in exported and "BEGIN SOLUTION" not in exported


def test_module_08_trains_on_the_students_package(completed, my_repo, binder_env, tmp_path):
    nb = run_in_binder(
        binder_env, my_repo, Path("modules") / "08_training" / "training.ipynb", tmp_path / "training.ipynb"
    )
    assert notebook_errors(nb) == []
    text = printed_text(nb)
    assert "bit-identical to the uninterrupted run: True" in text
    assert "AdamW           final loss" in text


CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); Playwright downloads nothing
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


@pytest.fixture
def jupyterlab(completed, my_repo, binder_env, tmp_path):
    "JupyterLab 4 from the Binder environment, on loopback with a token, serving the student repository."
    import secrets
    import socket
    import time
    import urllib.request

    python, env = binder_env
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    log = (tmp_path / "lab.log").open("w")
    args = [
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={my_repo}",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    settings = tmp_path / "settings" / "@jupyterlab"  # every cell in the page, no news pop-up
    for plugin, value in [
        ("notebook-extension/tracker", {"windowingMode": "none"}),
        ("apputils-extension/notification", {"fetchNews": "false"}),
    ]:
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(value))
    lab = subprocess.Popen(
        [str(python), "-m", "jupyterlab", *args],
        cwd=my_repo,
        env={
            **env,
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        lab.kill()
        pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-2000:])
    yield url, token
    lab.terminate()
    lab.wait(timeout=30)


PROMPTS = "() => [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].map(p => p.textContent)"


def run_all_cells(page, timeout: float = 300.0) -> None:
    "Run > Run All Cells (again if a kernel still starting swallowed it), then wait until all have run."
    import time

    from playwright.sync_api import TimeoutError as PageTimeout

    dialog_default = page.locator(".jp-Dialog .jp-mod-accept")
    for _ in range(10):
        if dialog_default.count():  # JupyterLab may ask which kernel to start: take its default
            dialog_default.first.click()
            page.wait_for_timeout(3000)
        try:
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=5000)
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click(timeout=5000)
        except PageTimeout:  # a dialog opened in between: answer it on the next round
            continue
        page.wait_for_timeout(5000)
        if any(re.search(r"\[(\*|\d+)\]", p) for p in page.evaluate(PROMPTS)):
            break
    busy = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']")
    quiet_since, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if busy.count() or any("*" in p for p in page.evaluate(PROMPTS)):
            quiet_since = None
        elif time.monotonic() - (quiet_since := quiet_since or time.monotonic()) >= 3:
            return
        page.wait_for_timeout(250)
    pytest.fail("the notebook did not finish running in JupyterLab")


def wait_for_idle_kernel(url: str, token: str, timeout: float = 90.0) -> None:
    """Wait until the server reports a started kernel that is idle (the notebook's, once it has opened).
    Jupyter Server answers 500 to a kernel list taken while a kernel is starting (it has no last_activity
    yet; JupyterLab simply asks again), so a 5xx means "not yet" here too."""
    import time
    import urllib.error
    import urllib.request

    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            kernels = json.loads(urllib.request.urlopen(f"{url}/api/kernels?token={token}", timeout=5).read())
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise
            kernels, last = [], f"HTTP {exc.code}"
        if kernels and all(k["execution_state"] == "idle" for k in kernels):
            return
        time.sleep(0.5)
    pytest.fail(f"the notebook's kernel did not start (last answer: {last})")


def test_jupyterlab_in_chromium_runs_the_completed_notebook(jupyterlab, my_repo):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium)"
    url, token = jupyterlab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{NOTEBOOK.as_posix()}?token={token}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
        wait_for_idle_kernel(url, token)  # Run All sent to a kernel still starting is lost
        page.wait_for_timeout(2000)
        run_all_cells(page)
        page.keyboard.press("Control+s")
        page.wait_for_timeout(2000)
        figure = page.locator(".jp-RenderedImage img").last  # the lab's bandwidth chart
        figure.scroll_into_view_if_needed()
        assert figure.is_visible() and figure.evaluate("img => img.naturalWidth") > 100
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "jupyterlab-module07.png"))
        browser.close()
    saved = json.loads((my_repo / NOTEBOOK).read_text())  # what the browser session saved
    assert notebook_errors(saved) == []
    assert printed_text(saved).count("Visible checks passed") == GRADED_CELLS
    images = sum("image/png" in out.get("data", {}) for c in saved["cells"] for out in c.get("outputs", []))
    assert images >= 5


def test_check_my_notebook_agrees_with_the_grader(student_repo, binder_env, tmp_path):
    """What the pre-hand-in check accepts, the grader grades in full; each defect it reports, the grader
    penalises or restores."""
    from helpers import AUTO, released_course
    from tinytorch_course.grading.autograde import autograde

    python, env = binder_env
    repo = Path(shutil.copytree(student_repo, tmp_path / "repo", symlinks=True))
    release = json.loads((repo / NOTEBOOK).read_text())
    good = completed_notebook(release, "reference")
    bad = completed_notebook(release, "adam-no-bias-correction")
    cell = lambda nb, gid: next(
        c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == gid
    )
    cell(bad, "imports")["source"] += "\nimport math  # a read-only cell, changed\n"
    cell(bad, "written-l2-vs-decoupled")["source"] = "YOUR ANSWER HERE"
    findings = {}
    for name, nb in [("good", good), ("bad", bad)]:
        (repo / NOTEBOOK).write_text(json.dumps(nb))
        run = subprocess.run(
            [str(python), "-m", "tinytorch_course.student.check", "--json"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        findings[name] = json.loads(run.stdout)
        assert run.returncode == (0 if name == "good" else 1), run.stdout[-2000:] + run.stderr[-2000:]
    assert not findings["good"]["defects"] and not findings["good"]["failed_tests"] and not findings["good"]["errors"]
    assert any("imports was changed" in d for d in findings["bad"]["defects"]) and findings["bad"]["failed_tests"]
    assert any("written-l2-vs-decoupled is still empty" in d for d in findings["bad"]["defects"])

    course = released_course(tmp_path / "course")
    for name, nb in [("good", good), ("bad", bad)]:
        folder = course.submitted(name)
        folder.mkdir(parents=True)
        (folder / "optimizers.ipynb").write_text(json.dumps(nb))
    autograde(course, workers=2, progress=False)
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, course.course_id) as gb:
        graded = {
            s: {g.name: g for g in gb.find_submission_notebook("optimizers", ASSIGNMENT, s).grades}
            for s in ("good", "bad")
        }
        assert sum(g.score for g in graded["good"].values() if not g.name.startswith("written-")) == AUTO
        written = graded["bad"]["written-l2-vs-decoupled"]
        assert written.score == 0 and not written.needs_manual_grade, "an empty answer: 0, as the check said"
    for name in ("good", "bad"):
        autograded = json.loads((course.autograded(name) / "optimizers.ipynb").read_text())
        zeroed = sorted(
            c["metadata"]["nbgrader"]["grade_id"]
            for c in autograded["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade")
            and c["cell_type"] == "code"
            and any(o.get("output_type") == "error" for o in c.get("outputs", []))
        )
        reported = sorted(t.split(":")[0] for t in findings[name]["failed_tests"])
        assert reported == zeroed, f"{name}: the check reported {reported}, the grader zeroed {zeroed}"
    restored = cell(json.loads((course.autograded("bad") / "optimizers.ipynb").read_text()), "imports")["source"]
    assert "a read-only cell, changed" not in restored, "the grader restored the cell the check flagged"


def test_the_hand_in_cell_shows_the_receipt_and_the_verdict_in_jupyterlab(jupyterlab, my_repo, tmp_path):
    """In the Binder environment, the *Hand in* cell asks for the token, sends the saved notebook to the
    service (a real process on 127.0.0.1), and shows the receipt, then the verdict table, in the notebook."""
    from playwright.sync_api import sync_playwright

    from handin import Service, handin_course, issue_tokens, with_hand_in_cell

    course = handin_course(tmp_path / "course")
    token = issue_tokens(course.root, ["ada"], instructor=None)["ada"]
    service = Service(course.root, log=tmp_path / "service.log").start()
    path, config = my_repo / NOTEBOOK, my_repo / "tinytorch_course" / "student" / "service.json"
    saved_config, kept = config.read_text(), Path("~/.tinytorch/token").expanduser()
    kept_token = kept.read_text() if kept.exists() else None
    try:
        path.write_text(json.dumps(with_hand_in_cell(json.loads(path.read_text())), indent=1))
        config.write_text(json.dumps({"url": service.url}))  # as `make release` writes it
        if kept.exists():
            kept.unlink()  # the cell asks for the token, as on a student's first hand-in
        url, lab_token = jupyterlab
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{NOTEBOOK.as_posix()}?token={lab_token}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
            wait_for_idle_kernel(url, lab_token)
            page.wait_for_timeout(1000)
            cell = page.locator(".jp-Notebook .jp-CodeCell").last
            cell.scroll_into_view_if_needed()
            cell.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            prompt = page.locator(".jp-Stdin-input")
            prompt.wait_for(timeout=60_000)
            prompt.fill(token)
            prompt.press("Enter")
            page.locator(".tt-handin-receipt").wait_for(timeout=120_000)
            table = page.locator(".tt-handin-table")
            table.wait_for(timeout=600_000)
            receipt = page.locator(".tt-handin-receipt").inner_text()
            shown = table.inner_text()
            page.locator(".tt-handin-receipt").scroll_into_view_if_needed()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "handin-verdict.png"))
            browser.close()
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        assert "attempt 1" in receipt and sha in receipt and "the bytes of your saved file" in receipt
        assert "first Adam step (lr=0.01)" in shown and "pass" in shown and "graded by your instructor" in shown
        assert page_points(shown) is not None
        assert kept.exists() and kept.read_text().strip() == token, "the token is kept for the next hand-in"
    finally:
        service.stop()
        config.write_text(saved_config)
        if kept_token is None:
            kept.unlink(missing_ok=True)
        else:
            kept.write_text(kept_token)


def page_points(text: str):
    "The points a verdict table shows for the first graded cell, or None."
    match = re.search(r"(\d+(?:\.\d+)?) / (\d+)", text)
    return match and (float(match.group(1)), float(match.group(2)))
