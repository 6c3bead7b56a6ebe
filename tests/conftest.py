"""Session fixtures: the student repository as `make release` builds it (tests must not change it)."""

import pytest

from helpers import make_course


@pytest.fixture(scope="session")
def student_repo(tmp_path_factory):
    "dist/student/ as `make release` builds it, in a scratch course."
    from tinytorch_course.grading.course import Course
    from tinytorch_course.release import release

    return release(Course(make_course(tmp_path_factory.mktemp("course"))))


from attack_batch import attack_batch  # noqa: E402, F401  (session-wide: two test files read one batch)
