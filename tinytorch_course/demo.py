"""`make demo`: run every module notebook top to bottom and print what happened."""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(path: Path) -> dict:
    "Execute one notebook in its own folder; report seconds, cells, figures and the first error."
    nb = nbformat.read(path, as_version=4)
    start, error = time.perf_counter(), ""
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1][:100]
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    return {"module": path.parent.name, "seconds": time.perf_counter() - start,
            "cells": sum(c.cell_type == "code" for c in nb.cells),
            "figures": sum("image/png" in o.get("data", {}) for o in outputs), "error": error}


def main() -> int:
    rows = [run_notebook(p) for p in sorted((ROOT / "modules").glob("*/*.ipynb"))]
    print(f"\n{'module':18s} {'cells':>5s} {'figures':>7s} {'seconds':>8s}  result")
    for r in rows:
        print(f"{r['module']:18s} {r['cells']:5d} {r['figures']:7d} {r['seconds']:8.1f}  {r['error'] or 'ok'}")
    failed = [r["module"] for r in rows if r["error"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} notebooks ran top to bottom"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
