"""The whole API fuzzed from its own OpenAPI schema with schemathesis, against a live server
with keys on (the requests carry a read-write key): valid and invalid requests (every
operation, both modes) must get no server error, only documented status codes and content
types, and responses that match the schema. Bounded in time: ~45 s in `make test`, ~10 min
with ``--full`` (`make reliability`).

Not checked here: schemathesis' ``negative_data_rejection``. A multipart field is text on the
wire whatever the schema's type, so its "type violations" are valid requests; and its
"missing key" cases are sent with the key this test adds. Keys are tested in test_auth.py."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]  # fmt: skip
BUDGET_S = {False: 45.0, True: 600.0}
MAX_EXAMPLES = {False: 60, True: 1000}
GENERATOR_RETRIES = 3  # schemathesis 4.x sometimes fails to draw a negative multipart body


class Run:
    """Calls made, failures kept (one per operation and mode), time left per operation."""

    def __init__(self, budget_s: float, parts: int) -> None:
        self.deadline = time.monotonic() + budget_s
        self.parts, self.calls, self.failures = parts, 0, []
        self.generator_errors: list[str] = []  # schemathesis could not draw a case (its bug)
        self.per_call = 0.05  # seconds, refined as calls are made

    def examples(self, done_parts: int, most: int) -> int:
        """How many examples the next operation gets to fit the time left (3 at least)."""
        left = max(0.0, self.deadline - time.monotonic())
        share = left / max(1, self.parts - done_parts)
        return int(min(most, max(3, share / self.per_call)))


def _fuzz(run: Run, operation, mode, url: str, headers: dict, examples: int) -> None:
    began, calls = time.monotonic(), run.calls

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        run.calls += 1
        try:
            case.call_and_validate(base_url=url, headers=headers, checks=CHECKS, timeout=60)
        except BaseException as exc:  # noqa: BLE001 — schemathesis raises exception groups
            if isinstance(exc, KeyboardInterrupt):
                raise
            run.failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])

    for _attempt in range(GENERATOR_RETRIES):
        try:
            check()
            break
        except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
            break
        except Exception as exc:  # the checks catch everything: this is the generator failing
            run.generator_errors.append(f"{operation.label} ({mode.value}): {exc!r}"[:300])
    print(
        f"{operation.label} {mode.value}: {run.calls - calls} calls "
        f"{time.monotonic() - began:.1f} s",
        flush=True,
    )
    if run.calls > calls:
        run.per_call = 0.7 * run.per_call + 0.3 * (time.monotonic() - began) / (run.calls - calls)


def test_the_api_holds_to_its_schema(keyed_server, request: pytest.FixtureRequest) -> None:
    full = bool(request.config.getoption("--full"))
    schema = schemathesis.openapi.from_url(f"{keyed_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    run = Run(BUDGET_S[full], len(operations) * len(modes))
    headers = {"Authorization": f"Bearer {keyed_server.write_key}"}
    began, done = time.monotonic(), 0
    for operation in operations:
        for mode in modes:
            _fuzz(run, operation, mode, keyed_server.url, headers,
                  run.examples(done, MAX_EXAMPLES[full]))  # fmt: skip
            done += 1
    seconds = time.monotonic() - began
    print(f"\nschemathesis: {len(operations)} operations, {run.calls} requests in "
          f"{seconds:.0f} s, {len(run.failures)} failures, "
          f"{len(run.generator_errors)} cases schemathesis could not generate")  # fmt: skip
    for error in run.generator_errors:
        print("  generator:", error)
    assert run.calls >= 3 * len(operations)
    assert not run.failures, "\n\n".join(run.failures[:5])
