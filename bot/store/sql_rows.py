"""Rows to values and back: the conversions between the store's tables and :mod:`bot.store.base`'s records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, Table

from bot.store.base import DigestRecord, FileRecord, NewTurn, ThreadKey, ThreadRecord, TurnRecord


def thread_is(table: Table, key: ThreadKey) -> tuple[Any, ...]:
    return (table.c.team == key.team, table.c.channel == key.channel, table.c.thread_ts == key.thread_ts)


def unique_files(records: Sequence[FileRecord]) -> list[FileRecord]:
    by_id: dict[str, FileRecord] = {}
    for record in records:
        by_id[record.slack_file_id] = record
    return list(by_id.values())


def file_row(key: ThreadKey, f: FileRecord) -> dict[str, Any]:
    return {
        "team": key.team, "channel": key.channel, "thread_ts": key.thread_ts, "slack_file_id": f.slack_file_id,
        "name": f.name, "size": f.size, "mimetype": f.mimetype, "filetype": f.filetype,
        "download_url": f.download_url, "message_ts": f.message_ts, "user_id": f.user, "created_at": f.created_at,
        "container_id": f.container_id, "sandbox_path": f.sandbox_path, "sandbox_file_id": f.sandbox_file_id,
        "facts": f.facts,
    }


def turn_row(turn: NewTurn) -> dict[str, Any]:
    return {
        "id": turn.id, "team": turn.key.team, "channel": turn.key.channel, "thread_ts": turn.key.thread_ts,
        "message_ts": turn.message_ts, "user_id": turn.user, "question": turn.question,
        "file_ids": json.dumps([f.slack_file_id for f in turn.files]), "status": "queued",
        "created_at": turn.created_at, "input_tokens": 0, "output_tokens": 0,
    }


def key_of(row: RowMapping) -> ThreadKey:
    return ThreadKey(team=row["team"], channel=row["channel"], thread_ts=row["thread_ts"])


def thread_record(row: RowMapping) -> ThreadRecord:
    return ThreadRecord(
        key=key_of(row), status=row["status"], created_at=row["created_at"], last_active_at=row["last_active_at"],
        container_id=row["container_id"], container_name=row["container_name"], backend=row["backend"],
        last_response_id=row["last_response_id"],
    )


def file_record(row: RowMapping) -> FileRecord:
    return FileRecord(
        key=key_of(row), slack_file_id=row["slack_file_id"], name=row["name"], size=row["size"],
        mimetype=row["mimetype"], filetype=row["filetype"], download_url=row["download_url"],
        message_ts=row["message_ts"], user=row["user_id"], created_at=row["created_at"],
        container_id=row["container_id"], sandbox_path=row["sandbox_path"], sandbox_file_id=row["sandbox_file_id"],
        facts=row["facts"], refused_reason=row["refused_reason"], refused_turn=row["refused_turn"],
        read_options=row["read_options"] or "",
    )


def digest_record(row: RowMapping) -> DigestRecord:
    return DigestRecord(
        id=row["id"], key=key_of(row), owner=row["owner"], question=row["question"], cron=row["cron"], tz=row["tz"],
        label=row["label"], created_at=row["created_at"], next_run_at=row["next_run_at"], status=row["status"],
        skip_unchanged=bool(row["skip_unchanged"]), last_run_at=row["last_run_at"], last_outcome=row["last_outcome"],
        last_hash=row["last_hash"], last_data_at=row["last_data_at"], failures=row["failures"],
    )


def turn_record(row: RowMapping) -> TurnRecord:
    return TurnRecord(
        id=row["id"], key=key_of(row), message_ts=row["message_ts"], user=row["user_id"], question=row["question"],
        file_ids=tuple(json.loads(row["file_ids"])), status=row["status"], created_at=row["created_at"],
        status_ts=row["status_ts"], started_at=row["started_at"], finished_at=row["finished_at"],
        response_id=row["response_id"], error=row["error"], input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"], answer=row["answer"], code=row["code"], model=row["model"],
        cost_usd=row["cost_usd"] or 0.0, attempts=row["attempts"] or 0, lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
    )
