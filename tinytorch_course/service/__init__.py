"""The hand-in service: students hand in from the notebook and see the hidden checks' verdict in seconds.

    make serve                                    # sqlite, the local sandboxed pool, 127.0.0.1:8900
    make serve DB_URL=postgresql+psycopg://... ENGINE=dask SCHEDULER=tcp://host:8786

A submission's path through this room, each step its own module:

- `app.py`       the HTTP routes (Starlette on uvicorn), thin: check the request, call the store, answer
- `store.py`     everything the service knows, in one database (sqlite or PostgreSQL, SQLAlchemy 2):
                 tokens (hashes only), submissions (bytes and receipts), requests (replays),
                 buckets, published feedback, grading slots; nothing lives only in memory
- `bucket.py`    each student's token bucket (a burst, then one more every few minutes)
- `queue.py`     the global queue in the store: admission, leases that expire, results written once
- `dispatch.py`  takes queued submissions and hands them to an engine (`engine.py`: local sandboxed
                 worker processes, `worker.py`, or Dask workers); both grade with the grader's own
                 `grading.dask_pool.grade_remote`, bytes in, `Result` out
- `verdict.py`   what a student may see of a `Result` (a course setting: check names and messages,
                 names only, or scores only); never a hidden input, expected value or hidden line
- `pages.py`     the instructor's status page and the login form (escaped, under a strict CSP)
- `admin.py`     the instructor's side: tokens from the roster, feedback publishing
- `collect.py`   the hand-in of record into `submitted/`, for the usual `make autograde`
- `settings.py`  the course settings (`c.HandInService.*` in nbgrader_config.py)

The service never writes nbgrader's gradebook: `make collect SOURCE=service` puts each student's
hand-in of record into `submitted/`, and the batch grader records it as it records any other.
"""
