"""Every module notebook runs top to bottom; figures are saved under artifacts/figures/ to be looked at;
and module 07's prose states only numbers that the cell beside it prints (compared with every run of
whitespace as one space, so that rewrapping a line changes nothing)."""

import base64
import functools
import itertools
import time

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import ASSIGNMENT, ROOT, SOURCE_NB

NOTEBOOKS = sorted((ROOT / "modules").glob("*/*.ipynb"))
FIGURES = ROOT / "artifacts" / "figures"

# (the code cell, by how it starts: [(what its output shows, how the markdown cells after it say it)])
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
    "GiB = 2 ** 30": [
        ("10B, Adam state: 74.51 GiB", "74.51 GiB for the 10B model"),
        ("175B, parameters: 651.9 GiB", "(651.9 GiB in float32)"),
        ("175B, Adam state: 1303.9 GiB", "another 1303.9 GiB"),
    ],
    "paths = {name: {} for name in surfaces}": [
        ("SGD lr=0.038 widest swing off the floor in steps 1-20: 0.90; loss below 1e-6 from step 206", "SGD's 0.90"),
        (
            "momentum lr=0.02 widest swing off the floor in steps 1-20: 0.80; loss below 1e-6 from step 77",
            "0.80 off the floor in the first twenty steps",
        ),
        (
            "momentum lr=0.02 widest swing off the floor in steps 1-20: 0.80; loss below 1e-6 from step 77",
            "below 1e-6 from step 77 on",
        ),
        (
            "Adam lr=0.1 widest swing off the floor in steps 1-20: 0.90; loss below 1e-6 from step 161",
            "step 161 for Adam",
        ),
        ("loss below 1e-6 from step 206", "206 for SGD"),
        (
            "Adam lr=0.05 after 1,000 steps at (0.95, 0.91), loss 2.3e-03",
            "in 1,000 steps: to (0.95, 0.91), loss 2.3e-03",
        ),
        ("momentum lr=2e-4 after 1,000 steps at (0.74, 0.54)", "momentum reaches (0.74, 0.54)"),
        ("SGD lr=1e-3 after 1,000 steps at (0.33, 0.10)", "SGD (0.33, 0.10)"),
    ],
    "start_loss = f(*start)": [
        (
            "Adam's loss is the highest of the three for every lr from 1e-04 to 0.032",
            "For every learning rate from 1e-04 to 0.032 its loss after 100 steps is the highest of the three",
        ),
        ("momentum lowest loss 1.6e-05 at lr 0.0056", "momentum reaches the lowest of all, 1.6e-05 at lr 0.0056"),
        ("and the lowest from lr 0.1 up", "Adam is lowest only from lr 0.1 up"),
        ("SGD 2/L = 0.040", "past `2/L = 0.040`"),
        ("momentum 2(1 + μ)/L = 0.076", "momentum past `2(1 + μ)/L = 0.076`"),
        ("Adam lowest loss 1.3e-04 at lr 1; converges up to lr 3.2", "it still converges at lr 3.2"),
    ],
    "w = Tensor([0.0], requires_grad=True, dtype=np.float64)\nopt = SGD(": [
        ("the step settles at 0.500, 10.0 times lr", "ten times `lr` at `μ = 0.9`"),
        ("the step settles at 0.500", "`0.05/(1 − 0.9) = 0.5`"),
    ],
    "b1, b2 = 0.9, 0.999": [
        ("g = 1 after 1,999 quiet steps: 2.94 lr", "2.94 lr after 1,999 steps"),
        ("after 9,999: 3.16 lr ((1 − β₁)/√(1 − β₂) = 3.16)", "`(1 − β₁)/√(1 − β₂) = 3.16 lr`"),
        ("growing gradients after 9,999 quiet steps: 7.27 lr", "Steadily growing gradients do worse, 7.27 lr"),
        ("β₁²/β₂)) = 7.27)", "that is the ceiling"),
    ],
    "w = Tensor([1.0], requires_grad=True, dtype=np.float16)": [
        ("the weight after one step: -inf", "the weight is `-inf` after a single step"),
        ("v = (1 - β₂)·g² = 1e-09; stored in float16: 0.0", "`v`, 1e-09, rounds to 0"),
        ("eps = 1e-8 in float16: 0.0", "and so does `eps`"),
    ],
    "def after_one_step(": [
        ("float32 master copy a step of 1.00 lr", "the step Adam should, 1.00 lr"),
        ("the float16 weight is now 0.9902", "0.9902"),
        ("eps=1e-4 a step of 10.01 lr", "the step is 10.01 lr"),
    ],
    "contenders = {": [
        ("19 of 100 training labels are flipped", "(19 of 100, ringed)"),
        ("a model of the true spirals fits 81% of them", "the 81% a model of the true spirals would"),
        (
            "Adam fits 97% of the training labels; held-out accuracy 94% at best (epoch 135), 82% at the end; "
            "weights' norm 50",
            "Adam fits 97% of the training labels while its weights' norm climbs to 50 "
            "and its held-out accuracy falls from 94% (epoch 135) to 82%",
        ),
        (
            "SGD + momentum fits 90% of the training labels; held-out accuracy 96% at best (epoch 225), 85% at the end",
            "momentum follows, from 96% to 85%",
        ),
        (
            "AdamW fits 85% of the training labels; held-out accuracy 96% at best (epoch 695), 95% at the end; "
            "weights' norm 14",
            "holds its norm at 14: it fits 85% of the training labels",
        ),
        (
            "AdamW fits 85% of the training labels; held-out accuracy 96% at best (epoch 695), 95% at the end",
            "keeps 95% held out",
        ),
        (
            "SGD fits 83% of the training labels; held-out accuracy 97% at best (epoch 740), 97% at the end",
            "(97% held out, its best)",
        ),
    ],
}


def flat(text: str) -> str:
    "Text with every run of whitespace (line breaks, padding) as one space."
    return " ".join(text.split())


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
    rest = cells[index + 1 :]
    first = next(k for k, c in enumerate(rest) if c.cell_type == "markdown")
    prose = "\n".join(c.source for c in itertools.takewhile(lambda c: c.cell_type == "markdown", rest[first:]))
    for shown, said in CLAIMS[start]:
        assert flat(shown) in flat(printed), f"the cell no longer prints {shown!r}:\n{printed}"
        assert flat(said) in flat(prose), f"the prose after the cell should say {said!r}:\n{prose}"
