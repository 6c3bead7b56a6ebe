"""Grading past one machine, on Dask `distributed` (dask-jobqueue and dask-kubernetes start the same
workers on Slurm or Kubernetes).

    make autograde ENGINE=dask SCHEDULER=tcp://host:8786

The instructor's machine stays the single writer of the gradebook. It sends each worker, once, a
*course bundle* (the nbgrader configuration, the assignment's source folder and, for sqlite, a
read-only snapshot of the gradebook), then each submission as bytes. A Dask worker grades it exactly
as a local worker does (`worker.execute_submission`: the kernel in the bubblewrap sandbox, the judge
outside it) and returns the `Result`; only the instructor's process records it. A worker that dies mid-submission
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
from .result import ERROR, Result

_UNPACKED = {}  # on a worker: bundle digest -> unpacked course folder


def bundle(course: Course, snapshot: Path | None) -> bytes:
    """What a worker needs to grade this course, as one compressed tar archive: the configuration, the source,
    the course secret (the judge draws hidden inputs from it; it never enters a sandbox) and the snapshot."""
    from .course import SECRET

    course.secret()  # made now if this course never had one
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(course.root / "nbgrader_config.py", "nbgrader_config.py")
        tar.add(course.root / SECRET, SECRET)
        source = Path(course.coursedir.source_directory)
        tar.add(course.root / source / ASSIGNMENT, str(source / ASSIGNMENT))
        if snapshot is not None and snapshot.exists():
            tar.add(snapshot, "gradebook.db")
    return buffer.getvalue()


def submission_files(course: Course, student: str) -> dict:
    "{file name: bytes} of a student's submission folder's regular files (never followed, only read)."
    folder = course.submitted(student)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.is_symlink()}


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


def grading_course(archive: bytes, memory_bytes: int, sandbox: bool, cgroups: bool = True) -> Course:
    "The course of `archive`, unpacked once on this worker, set to grade as asked."
    course = Course(_course_from(archive))
    course.config.RobustExecute.sandbox = sandbox
    course.config.SandboxedKernelManager.memory_limit = memory_bytes
    course.config.SandboxedKernelManager.cgroups = cgroups
    return course


def grade_remote(
    archive: bytes,
    student: str,
    files: dict,
    memory_bytes: int,
    sandbox: bool,
    cgroups: bool = True,
    prepare_next: bool = True,
) -> Result:
    """Runs on a Dask worker: grade one submission in the sandbox; return its Result, write no gradebook.
    With `prepare_next`, a kernel for the next submission starts before it returns (`ready.py`)."""
    from .worker import execute_submission, prepare_next

    course = grading_course(archive, memory_bytes, sandbox, cgroups)
    folder = course.submitted(student)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    try:
        return execute_submission(course, student, course.db_url)
    except Exception as exc:  # the grader's own failure still yields a result for that student
        return Result.failed(student, ERROR, f"The grader failed on this submission: {exc!r}"[:500], sandbox)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if prepare_next:
            prepare_next(course.config)


def run(
    course: Course,
    queue: list,
    scheduler: str,
    memory_bytes: int,
    sandbox: bool,
    snapshot: Path | None,
    retries: int = 3,
    cgroups: bool = True,
):
    """Yield (student, fingerprint, Result) as the cluster finishes each queued (student, fingerprint).

    The course bundle is scattered to every worker. If every copy is lost (the workers holding it died,
    or one joined after the scatter and its source died before it fetched a copy), the bundle is
    scattered again and the submissions that needed it are sent again, up to `retries` times each.
    """
    from distributed import Client, as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    with Client(scheduler, timeout="30s") as client:
        client.wait_for_workers(1, timeout=120)
        archive_bytes = bundle(course, snapshot)
        archive = [client.scatter(archive_bytes, broadcast=True)]
        pending, owners, tries = iter(queue), {}, {}

        def submit(student, fp):
            future = client.submit(
                grade_remote,
                archive[0],
                student,
                submission_files(course, student),
                memory_bytes,
                sandbox,
                cgroups,
                key=f"grade-{student}-{fp[:16]}-{tries.get(student, 0)}",
                pure=False,
            )
            owners[future] = (student, fp)
            return future

        def submit_next():  # submissions travel as bytes, a few per worker at a time, not all at once
            return next((submit(student, fp) for student, fp in pending), None)

        in_flight = max(4, 2 * len(client.scheduler_info()["workers"]))
        running = as_completed([f for f in (submit_next() for _ in range(in_flight)) if f is not None])
        for future in running:
            student, fp = owners.pop(future)
            try:
                result = future.result()
            except FutureCancelledError:  # its input, the bundle, was lost with the workers that held it
                tries[student] = tries.get(student, 0) + 1
                if tries[student] <= retries:
                    archive[0] = client.scatter(archive_bytes, broadcast=True)  # to the workers alive now
                    running.add(submit(student, fp))
                    continue
                result = Result.failed(
                    student,
                    ERROR,
                    "The grading workers kept losing this submission's course bundle; it was not graded.",
                    sandbox,
                )
            except KilledWorker as exc:
                result = Result.failed(
                    student,
                    ERROR,
                    f"The grading workers kept dying on this submission ({type(exc).__name__}); it was not graded.",
                    sandbox,
                )
            following = submit_next()
            if following is not None:
                running.add(following)
            yield student, fp, result
