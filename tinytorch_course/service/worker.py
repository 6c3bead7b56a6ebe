"""A local grading process of the hand-in service: bytes in, `Result` out, one submission at a time.

    python -m tinytorch_course.service.worker --bundle course.tar.gz --memory BYTES [--unsandboxed]

It reads one JSON task per line on stdin (`{"student", "files": {name: base64}, "out"}`), grades it
with the grader's own `grading.dask_pool.grade_remote` (the course bundle unpacked once, the kernel
in the bubblewrap sandbox, the judge outside it, no gradebook written) and writes the `Result` to
`out` atomically. While it waits, the next hand-in's kernel is already started (`grading/ready.py`).
It imports once and grades many; the dispatcher kills it if it overruns, and it dies with the
service that started it.
"""

import argparse
import base64
import json
import sys
from pathlib import Path

from ..grading.dask_pool import grade_remote, grading_course
from ..grading.record import atomic_write
from ..grading.worker import prepare_next


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch_course.service.worker")
    parser.add_argument("--bundle", required=True, help="the course bundle (grading.dask_pool.bundle)")
    parser.add_argument("--memory", type=int, required=True, help="the kernel's address-space limit in bytes")
    parser.add_argument("--unsandboxed", action="store_true")
    args = parser.parse_args(argv)
    archive = Path(args.bundle).read_bytes()
    config = grading_course(archive, args.memory, not args.unsandboxed).config
    prepare_next(config)  # a kernel boots while the first hand-in comes
    for line in sys.stdin:
        task = json.loads(line)
        files = {name: base64.b64decode(data) for name, data in task["files"].items()}
        result = grade_remote(archive, task["student"], files, args.memory, not args.unsandboxed, prepare_next=False)
        atomic_write(Path(task["out"]), json.dumps(result.to_json()))
        prepare_next(config)  # the next one's kernel, once this verdict is out
    return 0


if __name__ == "__main__":
    sys.exit(main())
