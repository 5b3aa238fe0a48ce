"""Honest file handling end to end: every corpus file is analysed or explained, refusals create no container.

Each case drops a file of the generated corpus (``tests/data``) into a thread of FakeSlack, with the bot running
against FakeOpenAI, and asserts the exact text a user sees, the bytes that reached the container and the facts
that reached the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.demo.fake_slack import ThreadItem
from bot.files import ACCEPTED_HINT, ACCESS_DENIED_REASON
from tests.data.generate import BAD, GOOD, UNSUPPORTED, ensure_corpus
from tests.e2e.conftest import CHANNEL, Harness
from tests.emulators.fake_openai import ScriptedTurn, default_script
from tests.unit.test_files_inspect import REASONS

pytestmark = pytest.mark.e2e

MB = 1024 * 1024


@pytest.fixture(scope="session")
def corpus() -> Path:
    return ensure_corpus()


PREVIEWS = {
    "comma.csv": "40 rows × 5 columns, `,`-separated, UTF-8, header row: `region` (text), `month` (date), "
                 "`revenue` (integer), `price` (number), `active` (boolean)",
    "crlf.csv": "12 rows × 5 columns, `,`-separated, UTF-8, header row: `region` (text), `month` (date), "
                "`revenue` (integer), `price` (number), `active` (boolean)",
    "semicolon_decimal_comma.csv": "30 rows × 4 columns, `;`-separated, UTF-8, decimal `,`, header row: "
                                   "`Region` (text), `Datum` (date), `Umsatz` (number), `Anteil` (number)",
    "tabs.tsv": "20 rows × 5 columns, tab-separated, UTF-8, header row: `region` (text), `month` (date), "
                "`revenue` (integer), `price` (number), `active` (boolean)",
    "pipes.csv": "20 rows × 5 columns, `|`-separated, UTF-8, header row: `region` (text), `month` (date), "
                 "`revenue` (integer), `price` (number), `active` (boolean)",
    "delimited.txt": "15 rows × 5 columns, `;`-separated, UTF-8, header row: `region` (text), `month` (date), "
                     "`revenue` (integer), `price` (number), `active` (boolean)",
    "compressed.csv.gz": "2,000 rows × 5 columns, `,`-separated, UTF-8, gzip, header row: `region` (text), "
                         "`month` (date), `revenue` (integer), `price` (number), `active` (boolean)",
    "bom_utf8.csv": "2 rows × 2 columns, `,`-separated, UTF-8 with BOM, header row: `city` (text), `café` (integer)",
    "utf16le.csv": "2 rows × 2 columns, tab-separated, UTF-16 LE, header row: `name` (text), `value` (integer)",
    "utf16be.csv": "2 rows × 2 columns, `,`-separated, UTF-16 BE, header row: `name` (text), `value` (integer)",
    "latin1.csv": "24 rows × 3 columns, `;`-separated, Latin-1, header row: `name` (text), `ville` (text), "
                  "`montant` (integer)",
    "cp1252.csv": "24 rows × 3 columns, `,`-separated, Windows-1252, header row: `product` (text), `label` (text), "
                  "`price_eur` (number)",
    "quoted_newlines.csv": "12 rows × 3 columns, `,`-separated, UTF-8, quoted line breaks, header row: "
                           "`id` (integer), `comment` (text), `score` (number)",
    "no_header.csv": "30 rows × 3 columns, `,`-separated, UTF-8, no header row: `column 1` (integer), "
                     "`column 2` (integer), `column 3` (number)",
    "single_column.csv": "8 rows × 1 column, UTF-8, header row: `city` (text)",
    "wide.csv": "10 rows × 300 columns, `,`-separated, UTF-8, header row: `m0` (integer), `m1` (integer), "
                "`m2` (integer), `m3` (integer), `m4` (integer), `m5` (integer), `m6` (integer), `m7` (integer), "
                "… (292 more)",
    "workbook.xlsx": "10 rows × 2 columns, Excel workbook, columns: `region` (text), `revenue` (integer)",
    "records.json": "4 rows × 2 columns, JSON records, columns: `region` (text), `revenue` (integer)",
    "lines.json": "5 rows × 2 columns, JSON lines, columns: `id` (integer), `ok` (boolean)",
}

READ_ARGS = {
    "semicolon_decimal_comma.csv": ", sep=';', decimal=',', thousands='.'", "tabs.tsv": ", sep='\\t'",
    "pipes.csv": ", sep='|'", "delimited.txt": ", sep=';'", "compressed.csv.gz": ", compression='gzip'",
    "bom_utf8.csv": ", encoding='utf-8-sig'", "utf16le.csv": ", sep='\\t', encoding='utf-16'",
    "utf16be.csv": ", encoding='utf-16'", "latin1.csv": ", sep=';', encoding='latin-1'",
    "cp1252.csv": ", encoding='cp1252'", "no_header.csv": ", header=None",
}



def failure(text: str) -> str:
    """A regular expression for ``:warning: <text> (ref `abcdef`)``."""
    return re.escape(f":warning: {text}") + r" \(ref `[0-9a-f]{6}`\)"


def bot_messages(harness: Harness, ts: str) -> list[ThreadItem]:
    return [m for m in harness.slack.thread(CHANNEL, ts) if m.is_bot]


def statuses(harness: Harness, ts: str) -> list[str]:
    return [m.text for m in bot_messages(harness, ts) if m.text.startswith((":white_check_mark:", ":warning:"))]


def model_input(harness: Harness, index: int = -1) -> str:
    text = list(harness.openai.responses.values())[index].request["input"]
    assert isinstance(text, str)
    return text


async def intake_reply(harness: Harness, ts: str) -> str:
    item: ThreadItem = await harness.wait_for(lambda: next(iter(bot_messages(harness, ts)), None))
    return item.text


def test_every_corpus_file_has_a_case() -> None:
    assert set(PREVIEWS) == set(GOOD) and set(REASONS) == set(BAD)


@pytest.mark.parametrize("name", sorted(GOOD))
async def test_a_good_file_is_previewed_uploaded_as_it_is_and_described_to_the_model(
    harness: Harness, corpus: Path, name: str,
) -> None:
    data = (corpus / name).read_bytes()
    bot = await harness.start()
    event = harness.file_event(name, data)
    await bot.send(event)
    await harness.wait_done(event["ts"])

    [done] = statuses(harness, event["ts"])
    first, preview, read_line = done.split("\n")
    assert first.startswith(f":white_check_mark: Done: analysed `{name}` in ")
    assert preview == f":page_facing_up: `{name}`: {PREVIEWS[name]}"
    [container] = harness.openai.live_containers()
    [uploaded] = container.user_files()
    assert uploaded.original_name == name and uploaded.data == data

    def call(path: str) -> str:
        if name.endswith(".xlsx"):
            return f"pandas.read_excel('{path}')"
        if name.endswith(".json"):
            return f"pandas.read_json('{path}'{', lines=True' if name == 'lines.json' else ''})"
        return f"pandas.read_csv('{path}'{READ_ARGS.get(name, '')})"

    assert read_line == f"      read with `{call(name)}`"  # the same reading the model is told, shown to the user
    assert f"read with {call(uploaded.path)}" in model_input(harness)


async def test_a_text_that_stops_being_utf8_past_its_head_is_read_with_the_encoding_of_the_whole(
    harness: Harness,
) -> None:
    # ASCII well past the 256 KiB the inspector reads, then a Windows-1252 "München" and "€"
    rows = b"".join(b"%06d,Berlin,%d\n" % (i, i % 97) for i in range(30_000))
    data = b"id,city,amount\n" + rows + b"030000,M\xfcnchen \x80,12\n"
    bot = await harness.start()
    event = harness.file_event("late.csv", data)
    await bot.send(event)
    await harness.wait_done(event["ts"])

    [uploaded] = harness.openai.live_containers()[0].user_files()
    assert uploaded.data == data
    assert f"read with pandas.read_csv('{uploaded.path}', encoding='cp1252')" in model_input(harness)
    [done] = statuses(harness, event["ts"])
    assert ", Windows-1252, header row: `id` (integer), `city` (text), `amount` (integer)" in done


@pytest.mark.parametrize("name", sorted(BAD))
async def test_a_bad_file_is_explained_and_no_container_is_created(harness: Harness, corpus: Path, name: str) -> None:
    bot = await harness.start()
    event = harness.file_event(name, (corpus / name).read_bytes())
    await bot.send(event)
    await harness.wait_done(event["ts"])
    [status] = statuses(harness, event["ts"])
    assert re.fullmatch(failure(f"I can't analyse `{name}`: {REASONS[name]}."), status), status
    assert harness.openai.containers == {} and harness.openai.responses == {}
    assert harness.slack.reactions[(CHANNEL, event["ts"])] == {"warning"}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
async def test_an_unsupported_type_is_refused_before_any_download(harness: Harness, corpus: Path, name: str) -> None:
    bot = await harness.start()
    event = harness.file_event(name, (corpus / name).read_bytes(), filetype=name.rsplit(".", 1)[1])
    await bot.send(event)
    ext = "." + name.rsplit(".", 1)[1]
    assert await intake_reply(harness, event["ts"]) == (
        f"I can't analyse this file:\n• `{name}`: `{ext}` is not a type I read; I read {ACCEPTED_HINT}")
    await bot.shutdown()
    assert harness.openai.containers == {} and harness.slack.downloads == []


@pytest.mark.parametrize(("options", "reason"), [
    ({"name": "big.csv", "size": 600 * MB},
     "it is 600.0 MB, over the limit of 512.0 MB (`DATASTORY_MAX_FILE_MB`)"),
    ({"name": "drive.csv", "mode": "external"},
     "it is an external file (Google Drive, Dropbox, …) that Slack only links to; upload the file itself to Slack"),
    ({"name": "gone.csv", "mode": "tombstone"}, "it was deleted before I could read it"),
])
async def test_metadata_refusals_happen_before_any_download(harness: Harness, options: dict[str, object],
                                                            reason: str) -> None:
    bot = await harness.start()
    name = str(options.pop("name"))
    event = harness.file_event(name, b"a,b\n1,2\n", **options)
    await bot.send(event)
    assert await intake_reply(harness, event["ts"]) == f"I can't analyse this file:\n• `{name}`: {reason}"
    await bot.shutdown()
    assert harness.openai.containers == {} and harness.slack.downloads == []


async def test_the_sign_in_page_names_the_missing_scope(harness: Harness, corpus: Path) -> None:
    bot = await harness.start()
    event = harness.file_event("comma.csv", (corpus / "comma.csv").read_bytes(), accessible=False)
    await bot.send(event)
    await harness.wait_done(event["ts"])
    [status] = statuses(harness, event["ts"])
    assert re.fullmatch(failure(f"I can't analyse `comma.csv`: {ACCESS_DENIED_REASON}."), status)
    assert "`files:read`" in status
    assert harness.openai.containers == {} and [d.served for d in harness.slack.downloads] == ["html"]


async def test_a_file_from_someone_outside_the_allowed_users_is_explained_to_them_alone_and_ignored(
    harness: Harness,
) -> None:
    bot = await harness.start(allowed_users=["UBOSS"])
    event = harness.file_event("comma.csv")
    await bot.send(event)
    [refusal] = await harness.wait_for(lambda: harness.slack.ephemerals)
    assert refusal["user"] == "U1" and refusal["thread_ts"] == event["ts"]
    assert refusal["text"] == (
        "I only work for the people this bot is set up for, and you're not on the list, so I left this alone "
        "(`DATASTORY_ALLOWED_USERS`). Ask whoever runs the bot to add you.")
    await bot.shutdown()
    assert harness.openai.containers == {} and harness.slack.downloads == []
    assert not harness.slack.recorder.calls("chat.postMessage") and not harness.slack.recorder.calls("reactions.add")


async def test_several_files_in_one_message_share_a_container_and_a_refusal_is_named(
    harness: Harness, corpus: Path,
) -> None:
    bot = await harness.start()
    slack = harness.slack
    names = ["comma.csv", "empty.csv", "tabs.tsv"]
    files = [slack.add_file(name=n, content=(corpus / n).read_bytes()) for n in names]
    event = slack.post_as_user(channel=CHANNEL, user="U1", files=files)
    await bot.send(event)
    await harness.wait_done(event["ts"])

    texts = [m.text for m in bot_messages(harness, event["ts"])]
    assert "I'm skipping this file:\n• `empty.csv`: it is empty (0 bytes)" in texts
    [done] = statuses(harness, event["ts"])
    assert re.match(r":white_check_mark: Done: analysed `(comma\.csv` and `tabs\.tsv|tabs\.tsv` and `comma\.csv)` in ",
                    done)
    assert f":page_facing_up: `comma.csv`: {PREVIEWS['comma.csv']}" in done.split("\n")
    assert f":page_facing_up: `tabs.tsv`: {PREVIEWS['tabs.tsv']}" in done.split("\n")
    [container] = harness.openai.live_containers()
    uploaded = {f.original_name: f for f in container.user_files()}
    assert sorted(uploaded) == ["comma.csv", "tabs.tsv"]
    assert all(uploaded[n].data == (corpus / n).read_bytes() for n in uploaded)
    text = model_input(harness)
    assert f"read with pandas.read_csv('{uploaded['tabs.tsv'].path}', sep='\\t')" in text
    assert f"read with pandas.read_csv('{uploaded['comma.csv'].path}')" in text
    assert "empty.csv" not in text


async def test_files_over_several_messages_land_in_one_container(harness: Harness, corpus: Path) -> None:
    bot = await harness.start()
    first = harness.file_event("comma.csv", (corpus / "comma.csv").read_bytes())
    ts = first["ts"]
    await bot.send(first)
    await harness.wait_done(ts)
    second = harness.file_event("latin1.csv", (corpus / "latin1.csv").read_bytes(), thread_ts=ts,
                                text="compare the two files")
    await bot.send(second)
    await harness.wait_done(ts, turns=2)

    assert len(harness.openai.containers) == 1
    [container] = harness.openai.live_containers()
    assert sorted(f.original_name for f in container.user_files()) == ["comma.csv", "latin1.csv"]
    latin = container.file_by_name("latin1.csv")
    assert latin is not None and latin.data == (corpus / "latin1.csv").read_bytes()
    assert f"read with pandas.read_csv('{latin.path}', sep=';', encoding='latin-1')" in model_input(harness)
    done = statuses(harness, ts)[-1]
    assert done.startswith(":white_check_mark: Done: analysed `latin1.csv` in ")
    assert done.split("\n")[1:] == [f":page_facing_up: `latin1.csv`: {PREVIEWS['latin1.csv']}",
                                     "      read with `pandas.read_csv('latin1.csv', sep=';', encoding='latin-1')`"]


async def test_a_same_name_upload_is_the_new_version_and_is_announced(harness: Harness, corpus: Path) -> None:
    bot = await harness.start()
    old_bytes, new_bytes = (corpus / "comma.csv").read_bytes(), (corpus / "semicolon_decimal_comma.csv").read_bytes()
    first = harness.file_event("sales.csv", old_bytes)
    ts = first["ts"]
    await bot.send(first)
    await harness.wait_done(ts)
    await bot.send(harness.file_event("sales.csv", new_bytes, thread_ts=ts))
    await harness.wait_done(ts, turns=2)

    done = statuses(harness, ts)[-1]
    assert done.split("\n")[1:] == [
        f":page_facing_up: `sales.csv`: {PREVIEWS['semicolon_decimal_comma.csv']}",
        "      read with `pandas.read_csv('sales.csv', sep=';', decimal=',', thousands='.')`",
        ":arrows_counterclockwise: `sales.csv` replaces the version shared earlier.",
    ]
    [container] = harness.openai.live_containers()
    versions = container.user_files()
    assert [f.data for f in versions] == [old_bytes, new_bytes]  # the old upload stays
    assert f"read with pandas.read_csv('{versions[1].path}', sep=';'" in model_input(harness)

    # a rebuilt container gets the newest version only, and the model hears of that one only
    harness.openai.expire(container.id)
    await bot.send(harness.reply_event("what changed?", ts))
    await harness.wait_done(ts, turns=3)
    [rebuilt] = [c for c in harness.openai.live_containers() if c.id != container.id and c.status == "running"]
    [reloaded] = rebuilt.user_files()
    assert reloaded.data == new_bytes
    text = model_input(harness)
    assert text.count("- sales.csv: path ") == 1 and f"path {reloaded.path} " in text


async def test_a_refused_file_later_in_a_thread_ends_that_turn_only(harness: Harness, corpus: Path) -> None:
    bot = await harness.start()
    first = harness.file_event("comma.csv", (corpus / "comma.csv").read_bytes())
    ts = first["ts"]
    await bot.send(first)
    await harness.wait_done(ts)
    await bot.send(harness.file_event("header_only.csv", (corpus / "header_only.csv").read_bytes(), thread_ts=ts))
    await harness.wait_done(ts, turns=2)
    assert re.fullmatch(failure("I can't analyse `header_only.csv`: it has only a header row and no data rows."),
                        statuses(harness, ts)[-1])
    assert len(harness.openai.containers) == 1 and len(harness.openai.responses) == 1

    # the next question is answered from the readable data; the refused file is not tried again
    await bot.send(harness.reply_event("and the trend?", ts))
    await harness.wait_done(ts, turns=3)
    assert statuses(harness, ts)[-1].startswith(":white_check_mark: Done: answered in ")
    assert len(harness.openai.responses) == 2
    assert sum(d.file_id == first["files"][0]["id"] for d in harness.slack.downloads) == 1
    assert len(harness.slack.downloads) == 2


async def test_a_question_in_a_thread_without_readable_data_creates_no_container(harness: Harness,
                                                                                corpus: Path) -> None:
    bot = await harness.start()
    first = harness.file_event("empty.csv", b"")
    ts = first["ts"]
    await bot.send(first)
    await harness.wait_done(ts)
    await bot.send(harness.reply_event("anything in there?", ts))
    await harness.wait_done(ts, turns=2)
    assert re.fullmatch(failure("I can't analyse `empty.csv`: it is empty (0 bytes)."), statuses(harness, ts)[-1])
    assert harness.openai.containers == {} and len(harness.slack.downloads) == 1


async def test_csv_outputs_are_posted_with_formulas_defused(harness: Harness) -> None:
    table = b"region,total,note\nNorth,-12.5,=HYPERLINK(\"http://evil\")\nSouth,3,@SUM(A1)\n"

    def script(ctx: object) -> ScriptedTurn:
        turn = default_script(ctx)  # type: ignore[arg-type]
        return ScriptedTurn(code=turn.code, text=turn.text, files=[*turn.files, ("totals.csv", table)])

    harness.openai.script = script
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    [posted] = [u for u in harness.slack.uploads if u.name == "totals.csv"]
    assert posted.content == (b"region,total,note\nNorth,-12.5,\"'=HYPERLINK(\"\"http://evil\"\")\"\n"
                              b"South,3,'@SUM(A1)\n")
