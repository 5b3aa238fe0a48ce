"""The API's small parts: keys (only a hash stored, checked in constant time), the angles of an answer, the
session storage's ids, the rate limit."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bot.analysts.angles import ANGLES_QUESTION, angle_question, angles_from_report, is_angle_refinement, parse_angles
from bot.api import keys
from bot.api.app import ORPHAN_GRACE_SECONDS, prune_orphan_files
from bot.api.limits import RateLimiter
from bot.api.problems import ApiProblem
from bot.api.runs import session_key
from bot.api.storage import SessionFiles
from bot.store import SqlStore
from tests.clocks import HandClock


async def test_a_key_is_stored_as_a_hash_and_checked(tmp_path: Path) -> None:
    store = SqlStore(url=f"sqlite:///{tmp_path / 'k.db'}")
    await store.open()
    try:
        new = keys.make_key("notebooks", now=1.0)
        await store.add_api_key(new.record)
        secret = new.key.removeprefix(f"{keys.PREFIX}{new.record.id}_")  # a urlsafe secret may hold "_"
        assert len(secret) == 43
        stored = await store.get_api_key(new.record.id)
        assert stored is not None and secret not in repr(stored) and stored.secret_sha256 != secret
        assert (await keys.verify(store, new.key)) == stored
        assert await keys.verify(store, new.key[:-1] + ("A" if new.key[-1] != "A" else "B")) is None
        assert await keys.verify(store, "ds_" + "0" * 12 + "_" + "A" * 43) is None
        assert await keys.verify(store, "not a key") is None
        assert await store.revoke_api_key(new.record.id, now=2.0)
        assert not await store.revoke_api_key(new.record.id, now=3.0)
        assert await keys.verify(store, new.key) is None
        assert [k.revoked_at for k in await store.list_api_keys()] == [2.0]
    finally:
        await store.close()


async def test_a_live_key_is_read_once_in_a_burst_and_a_revocation_is_honoured_within_seconds(
        tmp_path: Path) -> None:
    store = SqlStore(url=f"sqlite:///{tmp_path / 'k.db'}")
    await store.open()
    try:
        new = keys.make_key("notebooks", now=1.0)
        await store.add_api_key(new.record)
        clock = [100.0]
        cache = keys.KeyCache(store, seconds=5.0, monotonic=lambda: clock[0])
        wrong = new.key[:-1] + ("A" if new.key[-1] != "A" else "B")
        assert await cache.verify(wrong) is None
        assert await cache.verify(new.key) == new.record
        cache.used(new.record.id, 50.0)
        assert await store.revoke_api_key(new.record.id, now=2.0)
        clock[0] += 4.9  # the row kept from the last read: the revocation is not seen yet
        assert (await cache.verify(new.key)) == replace(new.record, last_used_at=50.0)
        assert await cache.verify(wrong) is None  # the secret is compared on every call
        clock[0] += 0.1  # the row is read again: revoked
        assert await cache.verify(new.key) is None
        clock[0] += 60.0
        assert await cache.verify(new.key) is None  # a revoked key is never kept
    finally:
        await store.close()


def test_angles_are_read_leniently_and_renumbered() -> None:
    text = 'Here you go:\n```json\n{"angles": [{"id": "x", "title": " Sales\\n grow ", "summary": "+30%"}, ' \
           '{"title": ""}, {"id": "z", "title": "Units"}]}\n```'
    assert [(a.id, a.title, a.summary) for a in parse_angles(text)] == [("a1", "Sales grow", "+30%"),
                                                                         ("a2", "Units", "")]
    assert parse_angles("no json here") == []
    assert parse_angles('{"angles": "nope"}') == []
    assert "JSON" in ANGLES_QUESTION
    [angle] = parse_angles('{"angles": [{"title": "T", "summary": "S"}]}')
    assert is_angle_refinement(angle_question(angle)) and not is_angle_refinement("T")


def test_offline_angles_quote_the_profile() -> None:
    report = {"files": [{
        "name": "sales.csv", "rows": 36, "columns_total": 4,
        "trend": {"value": "revenue", "agg": "sum", "period": "month", "first": ["Jan 2025", 300.0],
                  "last": ["Dec 2025", 520.0], "peak": ["Dec 2025", 520.0], "change_pct": 73.3},
        "categories": [{"name": "region", "unique": 3, "top": [["North", 12, 0.33]],
                        "by_value": {"column": "revenue", "agg": "sum", "top": [["North", 1500.0, 0.4]]}}],
        "correlations": [{"a": "revenue", "b": "units", "r": 0.91}],
        "anomalies": [], "columns": [{"name": "units", "missing_pct": 10.0}]}, {"name": "bad.csv", "error": "x"}]}
    angles = angles_from_report(report)
    assert [a.title for a in angles] == ["How revenue changed over time", "Which region drives revenue",
                                         "revenue and units rise together", "Gaps in the data of sales.csv"]
    assert "300 in Jan 2025 to 520 in Dec 2025, +73%" in angles[0].summary
    assert "North" in angles[1].summary and "40% of the total" in angles[1].summary
    assert [a.id for a in angles] == ["a1", "a2", "a3", "a4"]
    assert [a.title for a in angles_from_report({"files": [{"name": "t.csv", "rows": 2, "columns_total": 1}]})] == [
        "What is in t.csv"]


def test_session_storage_takes_only_ids(tmp_path: Path) -> None:
    files = SessionFiles(tmp_path)
    assert files.path_of_url(files.url("s1", "in1")) == tmp_path / "s1" / "in" / "in1"
    for url in ("datastory-api:../x/in1", "datastory-api:s1/../../etc", "https://files.slack.com/x", "datastory-api:"):
        assert files.path_of_url(url) is None
    with pytest.raises(ValueError):
        files.session_dir("../escape")


def test_the_rate_limit_is_a_sliding_minute_per_key() -> None:
    clock = HandClock()
    limiter = RateLimiter(per_minute=2, clock=clock)
    limiter.check("k1")
    clock.t += 10
    limiter.check("k1")
    limiter.check("k2")
    with pytest.raises(ApiProblem) as refused:
        limiter.check("k1")
    assert refused.value.status == 429 and refused.value.headers() == {"Retry-After": "50"}
    clock.t += 50
    limiter.check("k1")


async def test_files_of_sessions_the_store_pruned_are_removed(tmp_path: Path) -> None:
    store = SqlStore(url=f"sqlite:///{tmp_path / 'o.db'}")
    await store.open()
    try:
        files = SessionFiles(tmp_path / "files")
        live, pruned, young = session_key("k1", "slive"), "spruned", "syoung"
        await store.open_session(live, [], now=1.0)
        for sid in ("slive", pruned, young):
            files.write_json(sid, "session", {"files": []})
        old = time.time() - 2 * ORPHAN_GRACE_SECONDS
        for sid in ("slive", pruned):
            os.utime(files.session_dir(sid), (old, old))
        assert await prune_orphan_files(store, files, now=time.time()) == 1
        assert sorted(p.name for p in files.root.iterdir()) == ["slive", "syoung"]  # a new session is left alone
    finally:
        await store.close()
