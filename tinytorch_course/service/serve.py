"""`make serve`: the hand-in service on uvicorn, for the course in the current folder.

    python -m tinytorch_course.service [--host 127.0.0.1] [--port 8900] [--db-url URL]
                                       [--engine local|dask] [--scheduler tcp://host:8786] [--workers N]

By default: sqlite (`handin.db` at the course root), the local sandboxed pool (one worker per core),
127.0.0.1. TLS comes from a reverse proxy in front (the README shows Caddy's few lines); uvicorn
trusts its `X-Forwarded-*` headers only from `--forwarded-allow-ips` (default 127.0.0.1).
"""

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytorch_course.service", description=__doc__.split("\n")[0])
    parser.add_argument("--course", default=".", help="the course folder (holding nbgrader_config.py)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--db-url", default=os.environ.get("DB_URL") or None, help="the service's own database")
    parser.add_argument("--engine", choices=["local", "dask"], default="local")
    parser.add_argument("--scheduler", default=None, help="with --engine dask: the scheduler's address")
    parser.add_argument("--workers", type=int, default=0, help="local grading processes (default: cores + 1)")
    parser.add_argument("--unsandboxed", action="store_true", help="grade without bubblewrap (unsafe)")
    parser.add_argument("--no-grading", action="store_true", help="serve only; other servers grade")
    parser.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="proxies whose X-Forwarded-* to trust")
    args = parser.parse_args(argv)
    if args.engine == "dask" and not args.scheduler:
        parser.error("--engine dask needs --scheduler tcp://host:port")
    if not args.unsandboxed and not args.no_grading and args.engine == "local":
        from ..grading.sandbox import SandboxUnavailable, check_sandbox

        try:
            check_sandbox()
        except SandboxUnavailable as exc:
            print(f"make serve refuses to grade: {exc}", file=sys.stderr)
            return 2
    from ..grading.course import ASSIGNMENT, Course

    course = Course(args.course)
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            gb.find_assignment(ASSIGNMENT)
        except MissingEntry:
            print(f"{ASSIGNMENT} was never released in this course: run `make release` first.", file=sys.stderr)
            return 2
    import uvicorn

    from .app import create_app

    app = create_app(
        course.root,
        args.db_url,
        args.engine,
        args.workers,
        args.scheduler,
        sandbox=not args.unsandboxed,
        grading=not args.no_grading,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        limit_concurrency=1000,
        timeout_keep_alive=30,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
