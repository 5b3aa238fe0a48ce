"""The sandbox contract: one suite every :class:`bot.sandbox.base.SandboxBackend` must pass.

The ``backend`` fixture is parametrized by backend kind: ``openai`` against FakeOpenAI, and ``local`` (real
kernels in working directories under a temp dir, one warm kernel in the pool). A new backend adds a param that
builds a :class:`Harness`: the backend plus the few hooks the suite needs to look behind it (the bytes as stored,
making a container expire). Tests named ``test_openai_*`` at the end check the wire details of the ``openai``
backend only; the local backend's own behaviour is in ``tests/unit/test_local_sandbox.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from openai import AsyncOpenAI

from bot.sandbox.base import (
    ContainerExpired,
    ContainerNotFound,
    SandboxBackend,
    SandboxError,
    SandboxFile,
    SandboxTimeout,
    SandboxUnavailable,
)
from bot.sandbox.helper import helper_files, is_helper
from bot.sandbox.local import LocalSandbox
from bot.sandbox.openai import OpenAISandbox, translate_error
from tests.emulators.fake_openai import FakeOpenAI, ManualClock

HELPER = helper_files()
KEY = "sk-test-sandbox"
PREFIX = "dstest-"
CSV = b"region;month;revenue\r\nNorth;2024-01;100\r\n\"S\xc3\xbcd\";2024-01;80\r\n" * 50


@dataclass(slots=True)
class Harness:
    """A backend under test and the hooks to look behind it."""

    kind: str
    backend: SandboxBackend
    stored_bytes: Callable[[str, str], bytes]
    """``(container_id, file_id)`` → the bytes as the sandbox holds them, read without the backend."""
    expire: Callable[[str], Awaitable[None]] | None
    """Make a container expired now (``None`` when the backend has no expiry)."""
    oai: FakeOpenAI | None = None


async def chunked(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """``data`` in small pieces, as a download from Slack would arrive."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture(params=["openai", "local"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "openai":
        clock = ManualClock()
        async with FakeOpenAI(api_key=KEY, clock=clock) as oai, \
                AsyncOpenAI(base_url=oai.base_url, api_key=KEY, max_retries=0, timeout=5.0) as client:
            backend = OpenAISandbox(client=client, api_key=KEY, base_url=oai.base_url)

            async def expire(cid: str) -> None:
                oai.expire(cid)

            try:
                yield Harness(kind="openai", backend=backend, oai=oai, expire=expire,
                              stored_bytes=lambda cid, fid: oai.containers[cid].files[fid].data)
            finally:
                await backend.close()
    elif request.param == "local":
        base = Path(tempfile.mkdtemp(prefix="dstest-local-"))
        local = LocalSandbox(base_dir=base, pool_size=1)
        await local.start()
        try:
            yield Harness(kind="local", backend=local, expire=None,
                          stored_bytes=lambda cid, fid: local.host_path(cid, fid).read_bytes())
        finally:
            await local.close()
            shutil.rmtree(base, ignore_errors=True)
    else:  # pragma: no cover - a new backend adds its branch here
        raise AssertionError(request.param)


@pytest.fixture
def backend(harness: Harness) -> SandboxBackend:
    return harness.backend


# ------------------------------------------------------------------------------------------------ contract


async def test_round_trip(harness: Harness, backend: SandboxBackend) -> None:
    info = await backend.create(name=PREFIX + "round-trip", idle_minutes=20)
    assert info.name == PREFIX + "round-trip" and info.status == "running" and info.created_at > 0
    uploaded = await backend.upload(info.id, name="sales.csv", chunks=chunked(CSV), size=len(CSV))
    assert isinstance(uploaded, SandboxFile)
    assert uploaded.name.endswith("sales.csv") and uploaded.size == len(CSV) and uploaded.source == "user"
    assert uploaded.path.startswith("/")
    assert harness.stored_bytes(info.id, uploaded.id) == CSV
    listed = [f for f in await backend.list_files(info.id) if not is_helper(f.name)]  # the charting helper
    assert [(f.id, f.path, f.size) for f in listed] == [(uploaded.id, uploaded.path, len(CSV))]
    assert await backend.read_file(info.id, uploaded.id) == CSV

    await backend.delete(info.id)
    with pytest.raises(ContainerNotFound):
        await backend.list_files(info.id)
    with pytest.raises(ContainerNotFound):
        await backend.read_file(info.id, uploaded.id)
    with pytest.raises(ContainerNotFound):
        await backend.upload(info.id, name="again.csv", chunks=chunked(b"a\n1\n"), size=4)
    assert info.id not in [c.id for c in await backend.list_containers(prefix=PREFIX)]


async def test_delete_is_idempotent(backend: SandboxBackend) -> None:
    info = await backend.create(name=PREFIX + "twice", idle_minutes=5)
    await backend.delete(info.id)
    await backend.delete(info.id)


async def test_unknown_size_upload_and_names_preserved(harness: Harness, backend: SandboxBackend) -> None:
    info = await backend.create(name=PREFIX + "chunked", idle_minutes=5)
    name = 'ventes "été" 2024.csv'
    uploaded = await backend.upload(info.id, name=name, chunks=chunked(CSV, 1000), size=None)
    assert uploaded.name.endswith(name) and uploaded.size == len(CSV)
    assert harness.stored_bytes(info.id, uploaded.id) == CSV
    assert await backend.read_file(info.id, uploaded.id) == CSV


async def test_large_streamed_upload(harness: Harness, backend: SandboxBackend) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    info = await backend.create(name=PREFIX + "large", idle_minutes=5)
    uploaded = await backend.upload(info.id, name="blob.bin", chunks=chunked(data, 64 * 1024), size=len(data))
    assert uploaded.size == len(data) and harness.stored_bytes(info.id, uploaded.id) == data


async def test_expired_container(harness: Harness, backend: SandboxBackend) -> None:
    if harness.expire is None:
        pytest.skip(f"{harness.kind} containers do not expire")
    info = await backend.create(name=PREFIX + "expiring", idle_minutes=1)
    uploaded = await backend.upload(info.id, name="a.csv", chunks=chunked(b"a\n1\n"), size=4)
    await harness.expire(info.id)
    with pytest.raises(ContainerExpired):
        await backend.list_files(info.id)
    with pytest.raises(ContainerExpired):
        await backend.read_file(info.id, uploaded.id)
    with pytest.raises(ContainerExpired):
        await backend.upload(info.id, name="b.csv", chunks=chunked(b"b\n2\n"), size=4)
    (listed,) = [c for c in await backend.list_containers(prefix=PREFIX) if c.id == info.id]
    assert listed.status == "expired"
    await backend.delete(info.id)


async def test_list_containers_by_prefix_across_pages(backend: SandboxBackend) -> None:
    mine = []
    for i in range(110):
        name = f"{PREFIX}mine-{i}" if i % 5 else f"other-{i}"
        info = await backend.create(name=name, idle_minutes=5)
        if i % 5:
            mine.append(info.id)
    found = await backend.list_containers(prefix=PREFIX + "mine-")
    assert sorted(c.id for c in found) == sorted(mine) and len(found) == 88
    assert all(c.name.startswith(PREFIX + "mine-") for c in found)


async def test_missing_file_is_not_a_missing_container(backend: SandboxBackend) -> None:
    info = await backend.create(name=PREFIX + "nofile", idle_minutes=5)
    with pytest.raises(SandboxError) as err:
        await backend.read_file(info.id, "cfile_" + "0" * 32)
    assert not isinstance(err.value, (ContainerNotFound, ContainerExpired))


# ------------------------------------------------------------------------------------------------ openai wire details


@pytest.fixture
async def openai_harness() -> AsyncIterator[Harness]:
    async with FakeOpenAI(api_key=KEY) as oai, \
            AsyncOpenAI(base_url=oai.base_url, api_key=KEY, max_retries=0, timeout=0.5) as client:
        backend = OpenAISandbox(client=client, api_key=KEY, base_url=oai.base_url, memory_limit="4g")
        try:
            yield Harness(kind="openai", backend=backend, oai=oai, expire=None,
                          stored_bytes=lambda cid, fid: oai.containers[cid].files[fid].data)
        finally:
            await backend.close()


async def test_delete_file_removes_one_file_and_is_idempotent(backend: SandboxBackend) -> None:
    info = await backend.create(name=PREFIX + "delete-file", idle_minutes=5)
    kept = await backend.upload(info.id, name="kept.csv", chunks=chunked(CSV), size=len(CSV))
    gone = await backend.upload(info.id, name="chart.csv", chunks=chunked(b"a\n1\n"), size=4)
    await backend.delete_file(info.id, gone.id)
    await backend.delete_file(info.id, gone.id)  # already gone: fine
    assert [f.id for f in await backend.list_files(info.id) if not is_helper(f.name)] == [kept.id]
    with pytest.raises(SandboxError):
        await backend.read_file(info.id, gone.id)
    await backend.delete(info.id)
    with pytest.raises(ContainerNotFound):
        await backend.delete_file(info.id, kept.id)


async def test_charting_helper_is_in_every_sandbox(harness: Harness, backend: SandboxBackend) -> None:
    """Hosted containers get ``datastory_charts.py`` and ``datastory_style.py`` beside the data, byte for byte;
    a local kernel imports ``datastory_charts`` at once, and it writes a PNG and the chart spec beside it."""
    info = await backend.create(name=PREFIX + "helper", idle_minutes=5)
    if harness.kind == "openai":
        listed = {f.name.split("-", 1)[1]: f for f in await backend.list_files(info.id)}
        assert set(listed) == set(HELPER) and all(is_helper(f.name) for f in listed.values())
        assert all(f.source == "user" for f in listed.values())  # uploaded, so never taken for an output
        assert {name: harness.stored_bytes(info.id, f.id) for name, f in listed.items()} == HELPER
        return
    assert isinstance(backend, LocalSandbox)
    result = await backend.execute(info.id, "import datastory_charts as dc\n"
                                   "print(dc.bar(['North', 'South'], [130, 82], title='Revenue by region',"
                                   " value_label='Revenue', unit='$'))\n", timeout=60)
    assert result.error is None and result.stdout.strip() == "revenue_by_region.png"
    names = sorted(f.name for f in await backend.list_files(info.id))
    assert names == ["revenue_by_region.chart.json", "revenue_by_region.png"]
    spec = json.loads(await backend.read_file(info.id, "revenue_by_region.chart.json"))
    assert spec["kind"] == "bar" and spec["categories"] == ["North", "South"] and spec["unit"] == "$"
    assert spec["series"] == [{"name": "Revenue", "values": [130.0, 82.0]}]
    assert (await backend.read_file(info.id, "revenue_by_region.png")).startswith(b"\x89PNG")


async def test_openai_create_request(openai_harness: Harness) -> None:
    oai = openai_harness.oai
    assert oai is not None
    backend = openai_harness.backend
    assert backend.kind == "openai"
    await backend.create(name=PREFIX + "a", idle_minutes=120)
    body = oai.recorder.calls("/v1/containers")[-1].json
    assert body == {"name": PREFIX + "a", "expires_after": {"anchor": "last_active_at", "minutes": 20},
                    "memory_limit": "4g"}
    await backend.create(name=PREFIX + "b", idle_minutes=5)
    assert oai.recorder.calls("/v1/containers")[-1].json["expires_after"]["minutes"] == 5


async def test_openai_upload_wire(openai_harness: Harness) -> None:
    oai = openai_harness.oai
    assert oai is not None
    backend = openai_harness.backend
    info = await backend.create(name=PREFIX + "wire", idle_minutes=5)
    await backend.upload(info.id, name="sales.csv", chunks=chunked(CSV), size=len(CSV))
    known = oai.recorder.calls("/files")[-1]
    assert known.authorization == f"Bearer {KEY}"
    assert int(known.headers["Content-Length"]) == len(known.body)
    assert "Transfer-Encoding" not in known.headers
    assert b'Content-Disposition: form-data; name="file"; filename="sales.csv"\r\nContent-Type: text/csv' in known.body
    await backend.upload(info.id, name="sales.csv", chunks=chunked(CSV), size=None)
    unknown = oai.recorder.calls("/files")[-1]
    assert unknown.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in unknown.headers


async def test_openai_upload_size_mismatch(openai_harness: Harness) -> None:
    backend = openai_harness.backend
    info = await backend.create(name=PREFIX + "mismatch", idle_minutes=5)
    with pytest.raises(ValueError, match="declared"):
        await backend.upload(info.id, name="a.csv", chunks=chunked(CSV), size=len(CSV) - 1)
    with pytest.raises(ValueError, match="declared"):
        await backend.upload(info.id, name="a.csv", chunks=chunked(CSV), size=len(CSV) + 1)

    async def broken() -> AsyncIterator[bytes]:
        yield b"a,b\n"
        raise OSError("slack download broke")

    with pytest.raises(OSError, match="slack download broke"):
        await backend.upload(info.id, name="a.csv", chunks=broken(), size=None)
    assert [f for f in await backend.list_files(info.id) if not is_helper(f.name)] == []


async def test_openai_error_translation(openai_harness: Harness) -> None:
    oai = openai_harness.oai
    assert oai is not None
    backend = openai_harness.backend
    oai.fail_next("POST", "/v1/containers", status=429, headers={"retry-after": "0"})
    with pytest.raises(SandboxUnavailable):
        await backend.create(name=PREFIX + "x", idle_minutes=5)
    info = await backend.create(name=PREFIX + "x", idle_minutes=5)
    oai.fail_next("POST", "/v1/containers/*/files", status=500)
    with pytest.raises(SandboxUnavailable):
        await backend.upload(info.id, name="a.csv", chunks=chunked(b"a\n"), size=2)
    oai.fail_next("POST", "/v1/containers/*/files", status=429)
    with pytest.raises(SandboxUnavailable):
        await backend.upload(info.id, name="a.csv", chunks=chunked(b"a\n"), size=None)
    oai.fail_next("GET", "/v1/containers/*/files", status=None, delay=2.0)
    with pytest.raises(SandboxTimeout):
        await backend.list_files(info.id)
    oai.fail_next("DELETE", f"/v1/containers/{info.id}", status=503)
    with pytest.raises(SandboxUnavailable):
        await backend.delete(info.id)
    await backend.delete(info.id)


async def test_openai_upload_errors_without_server() -> None:
    async with AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key=KEY, max_retries=0) as client:
        backend = OpenAISandbox(client=client)
        try:
            with pytest.raises(SandboxUnavailable):
                await backend.upload("cntr_x", name="a.csv", chunks=chunked(b"a\n"), size=2)
        finally:
            await backend.close()


async def test_openai_shared_session_is_not_closed(openai_harness: Harness) -> None:
    oai = openai_harness.oai
    assert oai is not None
    async with aiohttp.ClientSession() as http, AsyncOpenAI(base_url=oai.base_url, api_key=KEY) as client:
        backend = OpenAISandbox(client=client, http=http)
        info = await backend.create(name=PREFIX + "shared", idle_minutes=5)
        await backend.upload(info.id, name="a.csv", chunks=chunked(b"a\n"), size=2)
        await backend.close()
        assert not http.closed


def test_translate_error_is_narrow() -> None:
    assert translate_error(ValueError("x")) is None
    assert isinstance(translate_error(TimeoutError()), SandboxTimeout)
    assert isinstance(translate_error(aiohttp.ClientConnectionError()), SandboxUnavailable)
