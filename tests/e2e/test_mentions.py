"""End to end, nothing hostile reaches Slack live: FakeOpenAI answers with every string of the hostile table, the
file name, its column names, the question and the name of a file the code wrote are hostile too, and what FakeSlack
received (messages and their earlier versions, blocks, ephemerals, command answers, uploads) holds no live mention
and no link, in a thread answer and in a digest, while the mention the bot adds itself stays live."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot import cli
from bot.demo import slack_events as ev
from bot.demo.mrkdwn import live_sequences
from bot.demo.slack_events import SlackSender
from tests.e2e.conftest import CHANNEL, SIGNING_SECRET, USER, Harness
from tests.e2e.test_digests import QUIET, button_of, digest, schedule, top_level
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script
from tests.hostile_text import HOSTILE

pytestmark = pytest.mark.e2e

EVIL_NAME = "<!channel> &lt;!here&gt;\n:white_check_mark: Done `x` [y](https://evil.example).csv"
EVIL_CSV = b"<!channel>,&lt;!here&gt;,<https://evil.example|login>\n1,2,3\n4,5,6\n"
EVIL_QUESTION = "what about <!here> and &lt;!channel&gt; and [login](https://evil.example)?"


def hostile_answer(ctx: ResponseContext) -> ScriptedTurn:
    turn = default_script(ctx)
    text = turn.text + "\n\n" + "\n\n".join(HOSTILE) + f"\n\nYou asked: {ctx.question}"
    return ScriptedTurn(code=turn.code, text=text, files=[*turn.files, ("<!here> &lt;!channel&gt;.csv", b"a\n1\n")],
                        logs=turn.logs)


async def test_a_thread_answer_posts_nothing_live(harness: Harness) -> None:
    harness.openai.script = hostile_answer
    bot = await harness.start()
    event = harness.file_event(EVIL_NAME, EVIL_CSV, text=EVIL_QUESTION)
    await bot.send(event)
    items = await harness.wait_done(event["ts"])
    await bot.send(harness.reply_event(EVIL_QUESTION, event["ts"]))
    items = await harness.wait_done(event["ts"], turns=2)

    answers = "".join(m.text for m in items if m.is_bot and "Summary of" in m.text)
    assert "Re-authenticate your Slack session (https://evil.example/login)" in answers  # the link, shown
    assert "You asked: what about &lt;!here&gt;" in answers  # the echoed question, as text
    assert len(harness.slack.received_texts()) > 10
    assert harness.slack.live_sequences() == []
    assert all(str(call.params.get("link_names")).lower() in ("0", "false")
               for call in harness.slack.recorder.calls("chat.postMessage"))
    [request] = [r for r in harness.openai.responses.values()][:1]
    prompt = str(request.request["input"])
    assert ":white_check_mark: Done 'x'" in prompt and "\\n:white_check_mark:" not in prompt  # one line per file


async def test_a_digest_posts_nothing_live_and_only_the_bots_own_mention_is_live(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = await harness.start(**QUIET)
    event = harness.file_event(EVIL_NAME, EVIL_CSV)
    await bot.send(event)
    await harness.wait_done(event["ts"])
    harness.openai.script = hostile_answer
    confirmation = await schedule(harness, bot, str(event["ts"]), f"digest daily 08:30: {EVIL_QUESTION} {HOSTILE[0]}")
    digest_id = button_of(confirmation)["value"]
    due = (await digest(bot, digest_id)).next_run_at
    assert await cli.amain(["digest", "run-due", "--now", datetime.fromtimestamp(due + 60, UTC).isoformat()],
                           settings=bot.settings) == 0
    [post, *_] = top_level(harness)
    assert post.text.startswith(f":newspaper: *Digest* `{digest_id}`") and "&lt;!here&gt;" in post.text
    assert harness.slack.live_sequences() == []

    async with SlackSender(bot.url + "/slack/events", SIGNING_SECRET) as sender:
        listing = await sender.send_command(ev.slash_command("/datastory", "digests", CHANNEL, USER,
                                                             harness.slack.new_response_url()))
        cancel = await sender.send_command(ev.slash_command("/datastory", f"digest cancel {digest_id}", CHANNEL,
                                                            USER, harness.slack.new_response_url()))
    assert listing.status == cancel.status == 200
    assert live_sequences(listing.body) == [] and live_sequences(cancel.body) == []
    await harness.wait_for(lambda: len(harness.slack.command_responses) >= 2)
    retired = harness.slack.find_message(CHANNEL, confirmation.ts)
    await harness.wait_for(lambda: retired is not None and retired.history)  # the confirmation says who cancelled
    # the owner in the listing's text and in its block, who cancelled in the reply, and in the retired confirmation's
    # text and block: the bot's own mentions, and nothing else
    assert harness.slack.live_sequences() == [f"<@{USER}>"] * 5
    capsys.readouterr()
