"""What a turn cost, the footer that says so, and the daily budget windows (UTC days).

A turn costs its tokens at the model's price (``DATASTORY_PRICES``, USD per million input and output tokens;
cached input tokens are billed as input, so the figure errs high) plus one hosted container session for each
container the turn had to create (``DATASTORY_CONTAINER_SESSION_USD`` by memory tier; the provider bills sessions
of up to 20 minutes, with a container expiring after 20 idle minutes, so a new container is a new session). A
model missing from the table has an unknown cost: the footer says so instead of inventing a number.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.analysts.base import Usage
from bot.formatting import seconds
from bot.store.base import TurnStore

DAY = 86_400.0


def token_cost(model: str, usage: Usage, prices: dict[str, tuple[float, float]]) -> float | None:
    """USD for ``usage`` at ``model``'s price; a dated model name (``gpt-4.1-2025-04-14``) uses its family's."""
    price = prices.get(model) or next((p for name, p in sorted(prices.items(), key=lambda kv: -len(kv[0]))
                                       if model.startswith(name + "-")), None)
    if price is None:
        return None
    return (usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000


def turn_cost(
    *, model: str, usage: Usage, prices: dict[str, tuple[float, float]], sessions: int, session_usd: float
) -> float | None:
    """Tokens plus container sessions; None when the model's price is unknown."""
    tokens = token_cost(model, usage, prices)
    return None if tokens is None else tokens + sessions * session_usd


def footer(elapsed: float, cost: float | None) -> str:
    """``_⏱ 12.3 s · ≈ $0.0123_`` (or ``cost unknown``)."""
    if cost is None:
        money = "cost unknown"
    elif cost == 0:
        money = "no model cost"
    else:
        money = f"≈ ${cost:.4f}" if cost < 1 else f"≈ ${cost:.2f}"
    return f"_⏱ {seconds(elapsed)} · {money}_"


def day_start(now: float) -> float:
    """00:00 UTC of the day of ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


async def over_budget(store: TurnStore, *, user: str, channel: str, budget: float, now: float,
                      user_is: str = "for you") -> str | None:
    """The refusal text when ``user``'s or ``channel``'s spending today (UTC) reached ``budget``, else None.
    ``user_is`` names the user in the text (``for you`` to the person asking; in a channel
    ``of`` and a :func:`bot.slack_text.mention`)."""
    since = day_start(now)
    spent_user = await store.spent_since(since, user=user)
    if spent_user >= budget:
        return budget_refusal(spent=spent_user, budget=budget, who=user_is, now=now)
    spent_channel = await store.spent_since(since, channel=channel)
    if spent_channel >= budget:
        return budget_refusal(spent=spent_channel, budget=budget, who="of this channel", now=now)
    return None


def budget_refusal(*, spent: float, budget: float, who: str, now: float) -> str:
    """The message a person gets when a daily budget is used up, with when it resets."""
    reset = day_start(now) + DAY
    left = timedelta(seconds=int(reset - now))
    hours, rest = divmod(left.seconds, 3600)
    when = datetime.fromtimestamp(reset, UTC).strftime("%H:%M UTC")
    return (f"The daily analysis budget {who} is used up (${spent:.2f} of ${budget:.2f}). It resets at {when}, "
            f"in {hours} h {rest // 60} min (`DATASTORY_DAILY_BUDGET_USD`).")
