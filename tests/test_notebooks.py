"""Every module notebook runs top to bottom; figures are saved under artifacts/figures/ to be looked at;
and module 07's prose states only numbers that the cell beside it prints."""

import base64
import functools
import time

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ASSIGNMENT, ROOT, SOURCE_NB

NOTEBOOKS = sorted((ROOT / "modules").glob("*/*.ipynb"))
FIGURES = ROOT / "artifacts" / "figures"

# (the code cell, by how it starts: [(what its output shows, how the markdown after it says it)])
CLAIMS = {
    "variants =": [
        ("step 1:   3.16 lr", "3.16 times too large"),
        ("largest of the ten:   6.53 lr", "by step ten 6.5 times"),
        ("only v corrected  step 1:   0.10 lr", "ten times too small"),
        ("only m corrected  step 1:  31.62 lr", "32 times too large"),
        ("1.000 to 1.000 lr", "every step is `lr`"),
    ],
    "adam_10b =": [
        ("parameters  40 GB + state  80 GB", "80 GB on top of 40 GB"),
        ("gradients 160 GB", "160 GB"),
        ("gradients 120 GB", "120 GB"),
        ("at least 2 devices", "neither\noptimizer fits on one 80 GB device"),
        ("Adam needs 40 GB more", "40 GB more"),
    ],
    "for step in (1, 10, 100):": [
        ("10.00000", "by 10 on step 1"),
        ("1.53534", "1.54 on step 10"),
        ("1.00003", "1.00003"),
    ],
    "def one_step(": [
        ("moved the weight by 1.00e-03", "by 0.001"),
        ("moved the weight by 8.94e-07", "(8.9e-07)"),
        ("it ends at 0.999000", "exactly `1 − lr·λ = 0.999`"),
        ("it ends at 0.900000", "to\n0.9"),
    ],
    "def final_weights(": [
        ("small-gradient weight by 0.8113", "pulled 0.81"),
        ("large-gradient one by 0.0110", "pulled 0.011"),
        ("AdamW      decay pulled the small-gradient weight by 0.0101", "0.010"),
        ("the large-gradient one by 0.0092", "0.009"),
    ],
}


@functools.lru_cache(maxsize=None)
def executed(path):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    print(f"{path.parent.name}: {time.perf_counter() - start:.1f} s")
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_notebook_executes(path):
    nb = executed(path)
    out = FIGURES / path.parent.name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                count += 1
                (out / f"figure{count:02d}.png").write_bytes(base64.b64decode(png))
    if path.parent.name == ASSIGNMENT:
        assert count >= 7, "module 07 should draw its figures"


@pytest.mark.slow
@pytest.mark.parametrize("start", sorted(CLAIMS))
def test_prose_states_what_the_cell_beside_it_prints(start):
    cells = executed(SOURCE_NB).cells
    [index] = [i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.startswith(start)]
    printed = "".join(o.get("text", "") for o in cells[index].outputs if o.get("output_type") == "stream")
    prose = next(c.source for c in cells[index + 1 :] if c.cell_type == "markdown")
    for shown, said in CLAIMS[start]:
        assert shown in printed, f"the cell no longer prints {shown!r}:\n{printed}"
        assert said in prose, f"the prose after the cell should say {said!r}:\n{prose}"
