"""Optimizer step throughput and transient memory, against torch.optim, in the same run.

    python benchmarks/optimizer_step.py [--sizes 1000000 10000000] [--repeats 10]

For SGD with momentum, Adam and AdamW: median time of one step of tinytorch's optimizer on one
float32 parameter of N values, on one thread and on all cores (the package's `for_each_block`),
torch.optim's with foreach=False / foreach=True / fused=True on all cores and foreach=True on one core
(when the `oracle` extra is installed), the ratios, the effective bandwidth against the bytes the step must
move (Adam/AdamW 28 per parameter, SGD-momentum 20), the machine's copy bandwidth measured here, and
the tracemalloc peak during one step beyond the optimizer's state.
"""

import argparse
import statistics
import time
import tracemalloc

import numpy as np

import tinytorch.core.optimizers as package
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.tensor import Tensor

# bytes read + written per parameter: p, g, state buffers read; p and state buffers written
BYTES = {"SGD-momentum": 4 * (3 + 2), "Adam": 4 * (4 + 3), "AdamW": 4 * (4 + 3)}
OURS = {
    "SGD-momentum": lambda p: SGD(p, lr=1e-3, momentum=0.9),
    "Adam": lambda p: Adam(p, lr=1e-3),
    "AdamW": lambda p: AdamW(p, lr=1e-3, weight_decay=0.01),
}


def median_seconds(step, repeats: int) -> float:
    step()  # the first step allocates state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth(n: int, repeats: int) -> float:
    "GB/s of np.copyto on n float32 values (one read and one write per value)."
    src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
    return 8 * n / median_seconds(lambda: np.copyto(dst, src), repeats) / 1e9


def ours(name: str, n: int, repeats: int, threads: int) -> tuple:
    package.STEP_THREADS = threads
    rng = np.random.default_rng(0)
    p = Tensor(rng.normal(size=n))
    p.requires_grad = True
    p.grad = Tensor(rng.normal(size=n))
    opt = OURS[name]([p])
    seconds = median_seconds(opt.step, repeats)
    tracemalloc.start()
    opt.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak


def torch_times(name: str, n: int, repeats: int) -> dict:
    try:
        import torch
    except ImportError:
        return {}
    cls = {"SGD-momentum": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}[name]
    kwargs = {
        "lr": 1e-3,
        **({"momentum": 0.9} if name == "SGD-momentum" else {}),
        **({"weight_decay": 0.01} if name == "AdamW" else {}),
    }
    out = {}
    threads = torch.get_num_threads()
    for label, flags, use in [
        ("foreach=False", {"foreach": False}, threads),
        ("foreach=True", {"foreach": True}, threads),
        ("fused=True", {"fused": True}, threads),
        ("foreach=True 1 thread", {"foreach": True}, 1),
    ]:
        p = torch.randn(n, requires_grad=True)
        p.grad = torch.randn(n)
        torch.set_num_threads(use)  # numpy's ufuncs run on one core; torch's kernels on all of them
        try:
            opt = cls([p], **kwargs, **flags)
            with torch.no_grad():
                out[label] = median_seconds(opt.step, repeats)
        except (RuntimeError, TypeError) as exc:  # fused is not available for every optimizer/device
            out[label] = None
            print(f"  ({name} {label}: {str(exc).splitlines()[0][:60]})")
        finally:
            torch.set_num_threads(threads)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    try:
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        print("torch is not installed (pip install -e '.[oracle]'): reporting tinytorch and bandwidth only")
    cores = package.STEP_THREADS
    print(f"tinytorch's step: 1 thread, and {cores} threads (all cores)")
    for n in args.sizes:
        bw = copy_bandwidth(n, args.repeats)
        print(f"\n{n:,} float32 parameters; copy bandwidth {bw:.1f} GB/s")
        print(
            f"{'optimizer':13s} {'ours ms':>8s} {'all-core':>8s} {'GB/s':>6s} {'transient/param':>15s}   "
            f"torch: ms (ours on all cores / torch)"
        )
        for name in OURS:
            one, _ = ours(name, n, args.repeats, 1)
            seconds, peak = ours(name, n, args.repeats, cores)
            theirs = torch_times(name, n, args.repeats)
            cells = [f"{label} {t * 1e3:.1f} ({seconds / t:.2f}x)" for label, t in theirs.items() if t]
            print(
                f"{name:13s} {one * 1e3:8.1f} {seconds * 1e3:8.1f} {BYTES[name] * n / seconds / 1e9:6.1f} "
                f"{peak / (4 * n):14.3f}x   " + ", ".join(cells)
            )


if __name__ == "__main__":
    main()
