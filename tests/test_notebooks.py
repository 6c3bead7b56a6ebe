"""Every module notebook runs top to bottom; figures are saved under artifacts/figures/ to be looked at."""
import base64
import time

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ASSIGNMENT, ROOT

NOTEBOOKS = sorted((ROOT / "modules").glob("*/*.ipynb"))
FIGURES = ROOT / "artifacts" / "figures"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.parent.name for p in NOTEBOOKS])
def test_notebook_executes(path):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    print(f"{path.parent.name}: {time.perf_counter() - start:.1f} s")
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
        assert count >= 5, "module 07 should draw its figures"
