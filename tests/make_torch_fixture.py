"""Regenerate tests/fixtures/torch_trajectories.npz: torch.optim's values for every oracle case.

Run from the repository root with torch installed (`pip install -e '.[oracle]'`):
    python tests/make_torch_fixture.py
The cases themselves are defined (seeded) in tests/helpers.py.
"""

from pathlib import Path

import numpy as np

from helpers import ORACLE_CASES, oracle_case, torch_trajectory


def main():
    import torch

    arrays = {"torch_version": np.array(torch.__version__)}
    for k in range(ORACLE_CASES):
        for t, params in torch_trajectory(oracle_case(k)).items():
            for i, p in enumerate(params):
                arrays[f"case{k}_step{t}_param{i}"] = p
    out = Path(__file__).with_name("fixtures") / "torch_trajectories.npz"
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size} bytes, torch {torch.__version__})")


if __name__ == "__main__":
    main()
