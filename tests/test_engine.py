import asyncio

from synthloop.records import Message
from synthloop.teachers.base import Teacher, TeacherError, TeacherRequest, TeacherResponse
from synthloop.teachers.engine import run_requests
from synthloop.teachers.oracle import OracleTeacher


class Flaky(Teacher):
    """Fails the first `failures` attempts of each request; records peak concurrency."""

    backend, model = "flaky", "m"

    def __init__(self, failures: int):
        self.failures, self.attempts, self.in_flight, self.peak = failures, {}, 0, 0

    async def complete(self, request):
        key = request.messages[0].content
        self.attempts[key] = self.attempts.get(key, 0) + 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        if key == "broken":
            raise TeacherError("400 bad request", retryable=False)
        if self.attempts[key] <= self.failures:
            raise TeacherError("503 try later")
        return TeacherResponse.of(f"answer to {key}")


def requests(*keys):
    return [TeacherRequest((Message("user", k),)) for k in keys]


def test_retries_then_succeeds_in_order_with_bounded_concurrency():
    teacher = Flaky(failures=2)
    out = asyncio.run(run_requests(teacher, requests(*map(str, range(40))), 5, max_retries=3, base_delay=0.001))
    assert [r.text for r in out] == [f"answer to {i}" for i in range(40)]
    assert all(r.attempts == 3 and r.error is None for r in out)
    assert teacher.peak <= 5


def test_exhausted_and_non_retryable_calls_come_back_as_errors():
    teacher = Flaky(failures=10)
    out = asyncio.run(run_requests(teacher, requests("a", "broken"), 4, max_retries=2, base_delay=0.001))
    assert out[0].text is None and "503" in out[0].error and out[0].attempts == 3
    assert out[1].text is None and "400" in out[1].error and out[1].attempts == 1
    assert teacher.attempts["broken"] == 1, "a non-retryable error is not retried"


def test_oracle_without_a_problem_fails_cleanly():
    out = asyncio.run(run_requests(OracleTeacher(), requests("x"), 1, max_retries=2))
    assert "only skill problems" in out[0].error


def test_request_key_covers_sampling_and_sample_index():
    a, b = TeacherRequest((Message("user", "q"),)), TeacherRequest((Message("user", "q"),), sample_index=1)
    assert a.key("x", "m") != b.key("x", "m") and a.key("x", "m") == a.key("x", "m")
    assert a.key("x", "m") != a.key("x", "other")
