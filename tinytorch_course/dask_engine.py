"""Grading past one machine, on Dask `distributed` (dask-jobqueue and dask-kubernetes start the same
workers on Slurm or Kubernetes).

    make autograde ENGINE=dask SCHEDULER=tcp://host:8786

The instructor's machine stays the single writer of the gradebook. It sends each worker, once, a
*course bundle* (the nbgrader configuration, the assignment's source folder and, for sqlite, a
read-only snapshot of the gradebook), then each submission as bytes. A Dask worker grades it exactly
as a local worker does (`batch.execute_submission`: the kernel in the bubblewrap sandbox, the judge
outside it) and returns the result; only this process records it. A worker that dies mid-submission
costs nothing: the scheduler runs the task again elsewhere (up to its `allowed-failures`), and the
gradebook is written once per submission, when a result arrives.

A Dask worker needs this package and bubblewrap, like a local grading machine. Start one per core,
one thread each: `dask worker tcp://host:8786 --nthreads 1`.
"""
import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path

from .course import ASSIGNMENT, Course

_UNPACKED = {}  # on a worker: bundle digest -> unpacked course folder


def bundle(course: Course, snapshot: Path | None) -> bytes:
    "What a worker needs to grade this course, as one compressed tar archive."
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(course.root / "nbgrader_config.py", "nbgrader_config.py")
        source = Path(course.coursedir.source_directory)
        tar.add(course.root / source / ASSIGNMENT, str(source / ASSIGNMENT))
        if snapshot is not None and snapshot.exists():
            tar.add(snapshot, "gradebook.db")
    return buffer.getvalue()


def submission_files(course: Course, student: str) -> dict:
    "{file name: bytes} of a student's submission folder (only read, never changed)."
    folder = course.submitted(student)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _course_from(archive: bytes) -> Path:
    digest = hashlib.sha256(archive).hexdigest()[:16]
    if digest not in _UNPACKED or not _UNPACKED[digest].exists():
        root = Path(tempfile.mkdtemp(prefix=f"tinytorch-course-{digest}-"))
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            try:
                tar.extractall(root, filter="data")
            except TypeError:  # Python before 3.10.12 / 3.11.4: no filters (the archive is our own)
                tar.extractall(root)
        _UNPACKED[digest] = root
    return _UNPACKED[digest]


def grade_remote(archive: bytes, student: str, files: dict, memory_bytes: int, sandbox: bool) -> dict:
    "Runs on a Dask worker: grade one submission in the sandbox; return the result, write no gradebook."
    from .batch import execute_submission
    course = Course(_course_from(archive))
    course.config.RobustExecute.sandbox = sandbox
    course.config.SandboxedKernelManager.memory_limit = memory_bytes
    folder = course.submitted(student)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    try:
        return execute_submission(course, student, course.db_url)
    except Exception as exc:  # the grader's own failure still yields a result for that student
        return {"status": "error", "reason": f"The grader failed on this submission: {exc!r}"[:500]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def grade_on_dask(course: Course, queue: list, scheduler: str, memory_bytes: int, sandbox: bool,
                  snapshot: Path | None):
    "Yield (student, fingerprint, result) as the cluster finishes each queued (student, fingerprint)."
    from distributed import Client, as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    with Client(scheduler, timeout="30s") as client:
        archive = client.scatter(bundle(course, snapshot), broadcast=True)
        pending, owners = iter(queue), {}

        def submit_next():  # submissions travel as bytes, a few per worker at a time, not all at once
            for student, fp in pending:
                future = client.submit(grade_remote, archive, student, submission_files(course, student), memory_bytes,
                                       sandbox, key=f"grade-{student}-{fp[:16]}", pure=False)
                owners[future] = (student, fp)
                return future
            return None

        in_flight = max(4, 2 * len(client.scheduler_info()["workers"]))
        running = as_completed([f for f in (submit_next() for _ in range(in_flight)) if f is not None])
        for future in running:
            student, fp = owners.pop(future)
            try:
                result = future.result()
            except (KilledWorker, FutureCancelledError) as exc:
                result = {"status": "error", "reason": "The grading workers kept dying on this submission "
                          f"({type(exc).__name__}); it was not graded."}
            following = submit_next()
            if following is not None:
                running.add(following)
            yield student, fp, result
