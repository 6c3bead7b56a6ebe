"""Shared test helpers and Hypothesis strategies (one place, as in minitorch)."""

import numpy as np
from hypothesis import strategies as st

from tinytorch.core.tensor import Tensor

# ---- Hypothesis strategies -------------------------------------------------------------------
shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
nonempty_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2**32 - 1)


def leaf(rng, shape, low=-2.0, high=2.0):
    "A float64 leaf tensor that requires grad."
    return Tensor(rng.uniform(low, high, size=shape), requires_grad=True, dtype=np.float64)


def away_from_zero(rng, shape, low=0.2, high=2.0):
    "float64 values with |x| in [low, high]: safe for log, division and kinks at zero."
    return rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)


# ---- torch oracle cases ----------------------------------------------------------------------
ORACLE_STEPS = 40
ORACLE_SNAPSHOTS = (1, 2, 5, 10, 20, 40)
ORACLE_CASES = 24


def oracle_case(k: int) -> dict:
    "Case k of the torch comparison: optimizer, hyperparameters, shapes, starting values, gradients."
    rng = np.random.default_rng(1000 + k)
    kind = ("sgd", "adam", "adamw")[k % 3]
    case = {
        "kind": kind,
        "lr": float(10 ** rng.uniform(-3, -1)),
        "weight_decay": float(rng.choice([0.0, 10 ** rng.uniform(-3, -1)])),
        "scale": float(10.0 ** rng.choice([-6, -3, 0, 1])),
    }
    if kind == "sgd":
        case["momentum"] = float(rng.choice([0.0, 0.5, 0.9]))
    else:
        case["betas"] = (float(rng.uniform(0.8, 0.95)), float(rng.uniform(0.99, 0.9999)))
        case["eps"] = float(rng.choice([1e-8, 1e-6]))
    ndims = [0, 1, 2, 3]
    case["shapes"] = [tuple(int(d) for d in rng.integers(1, 5, size=n)) for n in ndims]
    case["init"] = [rng.normal(size=s).astype(np.float32) for s in case["shapes"]]
    case["grads"] = [
        [(case["scale"] * rng.normal(size=s)).astype(np.float32) for s in case["shapes"]] for _ in range(ORACLE_STEPS)
    ]
    return case


def hyperparameters(case: dict) -> dict:
    "The keyword arguments shared by tinytorch and torch.optim for this case."
    keys = ("lr", "weight_decay", "momentum", "betas", "eps")
    return {k: case[k] for k in keys if k in case}


def tinytorch_trajectory(case: dict) -> dict:
    "Parameter values at each snapshot step, from the exported tinytorch optimizers."
    from tinytorch.core.optimizers import SGD, Adam, AdamW

    cls = {"sgd": SGD, "adam": Adam, "adamw": AdamW}[case["kind"]]
    params = [Tensor(x, requires_grad=True) for x in case["init"]]
    opt, out = cls(params, **hyperparameters(case)), {}
    for t, gs in enumerate(case["grads"], start=1):
        for p, g in zip(params, gs):
            p.grad = Tensor(g)
        opt.step()
        if t in ORACLE_SNAPSHOTS:
            out[t] = [p.data.copy() for p in params]
    return out


def torch_trajectory(case: dict) -> dict:
    "The same, from torch.optim (foreach=False, float32)."
    import torch

    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[case["kind"]]
    params = [torch.tensor(x, requires_grad=True) for x in case["init"]]
    opt, out = cls(params, foreach=False, **hyperparameters(case)), {}
    for t, gs in enumerate(case["grads"], start=1):
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
        if t in ORACLE_SNAPSHOTS:
            out[t] = [p.detach().numpy().copy() for p in params]
    return out


def worst_relative_error(ours: dict, theirs: dict) -> float:
    "Largest |ours - theirs| relative to the size of theirs, over snapshots and parameters."
    worst = 0.0
    for t in theirs:
        for a, b in zip(ours[t], theirs[t]):
            worst = max(worst, float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30)))
    return worst


# ---- the course pipeline ---------------------------------------------------------------------
import json  # noqa: E402
import re  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
from tinytorch_course.grading.course import ASSIGNMENT, NOTEBOOK, points  # noqa: E402,F401
from tinytorch_course.grading.course import SOURCE as SOURCE_NB  # noqa: E402

AUTO = points()["auto"]  # what a correct submission earns before its written answers are graded  # noqa: E305
MARKERS = re.compile(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)")
MARKERS_AND_REGIONS = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END \1", re.S)


from tinytorch_course.grading.course import run_script as run_tool  # noqa: E402,F401
from tinytorch_course.grading.course import tool_env  # noqa: E402,F401
from tinytorch_course.student.notebook import cell_source  # noqa: E402,F401


def read_nb(path) -> dict:
    return json.loads(Path(path).read_text())


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def regions(text: str, kind: str) -> list:
    "Lines between `### BEGIN {kind}` and `### END {kind}` markers."
    out, inside = [], False
    for line in text.splitlines():
        if line.strip() == f"### BEGIN {kind}":
            inside = True
        elif line.strip() == f"### END {kind}":
            inside = False
        elif inside:
            out.append(line)
    return out


def secret_lines(kinds=("SOLUTION", "HIDDEN TESTS")) -> set:
    "Distinctive lines of the source's solution and/or hidden-test regions that appear nowhere else in it."
    source = "\n".join(cell_source(c) for c in read_nb(SOURCE_NB)["cells"])
    public = {line.strip() for line in MARKERS_AND_REGIONS.sub("", source).splitlines()}
    secret = {line.strip() for kind in kinds for line in regions(source, kind)}
    return {s for s in secret - public if len(s) > 12 and not s.startswith("#")}


def make_course(dest: Path) -> Path:
    "A throwaway course folder holding the nbgrader config and the module 07 source."
    from tinytorch_course.grading.course import scratch_course

    return scratch_course(dest).root


def tree_hash(folder, skip=()) -> dict:
    "{relative path: sha256} of every file under `folder`, leaving out paths that start with one of `skip`."
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file() and not str(p.relative_to(folder)).startswith(skip)
    }


def released_course(dest: Path, timeout: int | None = None, db_url: str | None = None):
    "A throwaway course, released (nbgrader generate_assignment), with a shorter cell timeout or another gradebook."
    from tinytorch_course.grading.course import Course

    root = make_course(dest)
    with open(root / "nbgrader_config.py", "a") as f:
        if timeout:
            f.write(f"\nc.Execute.timeout = {timeout}  # keep slow cells short in tests\n")
        if db_url:
            f.write(f"\nc.CourseDirectory.db_url = {db_url!r}  # a shared gradebook\n")
    course = Course(root)
    course.tool("nbgrader", "generate_assignment", ASSIGNMENT, "--force")
    course.secret()  # as `make release` makes it
    return course


def submission_scores(course: Path) -> dict:
    "{student: (score, max_score)} from the course's gradebook."
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.student_id: (s.score, s.max_score) for s in gb.assignment_submissions(ASSIGNMENT)}


def completed_notebook(release_nb: dict, style: str) -> dict:
    "The student notebook with every solution cell taken from example submission `style`, markers removed."
    from tinytorch_course.examples.build import build

    solved = {nbgrader_meta(c).get("grade_id"): cell_source(c) for c in json.loads(build(style))["cells"]}
    nb = json.loads(json.dumps(release_nb))
    for cell in nb["cells"]:
        if nbgrader_meta(cell).get("solution"):
            text = solved[nbgrader_meta(cell)["grade_id"]]
            cell["source"] = "\n".join(line for line in text.split("\n") if not MARKERS.search(line))
    return nb


def notebook_errors(nb: dict) -> list:
    "(cell index, exception name, message) of every error output of an executed notebook."
    return [
        (i, out["ename"], out.get("evalue", ""))
        for i, cell in enumerate(nb["cells"])
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


def printed_text(nb: dict) -> str:
    "Everything an executed notebook printed to stdout."
    return "".join(
        "".join(out.get("text", ""))
        for cell in nb["cells"]
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )
