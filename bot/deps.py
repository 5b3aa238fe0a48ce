"""What the Slack handlers receive from the composition root: the objects they translate events into calls on."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.access import Access
from bot.answers import Answers
from bot.config import Settings
from bot.digests import Digests
from bot.home import Home
from bot.intake import Intake
from bot.metrics import Metrics
from bot.offboarding import Offboarding
from bot.status import Status


@dataclass(frozen=True, slots=True)
class Deps:
    """Handler dependencies, built once in ``bot.app``."""

    settings: Settings
    intake: Intake
    digests: Digests
    access: Access
    offboarding: Offboarding
    answers: Answers
    home: Home
    status: Status
    metrics: Metrics = field(default_factory=Metrics)
