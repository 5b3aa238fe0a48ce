"""Property tests of the HTTP API from its own OpenAPI document (schemathesis): whatever the generated request,
no 5xx, and every response matches the document. The server is ``datastory api`` on the local sandbox with the
offline analyst, in a thread of its own (schemathesis calls it synchronously); examples are bounded to keep the
run short."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bot.api.openapi import openapi_document
from tests.e2e.api_harness import SALES_CSV, create_key, local_settings, start_api

pytestmark = pytest.mark.e2e

schema = schemathesis.openapi.from_dict(openapi_document())


class Served:
    """``datastory api`` in a thread; a key and one real session for the positive paths."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-under-test", daemon=True)
        self.thread.start()
        config = local_settings(tmp)
        self.key = self._run(create_key(config))
        self.api = self._run(start_api(config))
        status, session = self._run(self.api.upload(self.key, ("sales.csv", SALES_CSV)))
        assert status == 201
        self.session_id = session["session_id"]

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def close(self) -> None:
        self._run(self.api.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("schema"))
    yield s
    s.close()


def check(served: Served, case: schemathesis.Case) -> None:
    """Every default check; an upload's acceptance depends on its bytes being a readable table (415/422 otherwise),
    which no schema can say, so "schema-valid data is accepted" is not asked of ``POST /v1/sessions``."""
    excluded = [positive_data_acceptance] if case.operation.path == "/v1/sessions" else []
    case.call_and_validate(base_url=served.api.url, headers={"Authorization": f"Bearer {served.key}"},
                           excluded_checks=excluded)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_document(served: Served, case: schemathesis.Case) -> None:
    check(served, case)


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_on_a_real_session(served: Served, case: schemathesis.Case) -> None:
    if "session_id" in (case.path_parameters or {}) and case.method != "DELETE":
        case.path_parameters["session_id"] = served.session_id
    check(served, case)
