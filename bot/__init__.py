"""datastory: a Slack bot that turns a CSV into an analysis in its thread.

The package holds the Slack-independent core; ``bot.bootstrap`` is the composition root (``bot.app`` adds the
Slack app on it). Importing this package imports nothing else, so ``handlers`` can import core modules without
cycles.
"""

__version__ = "0.1.0"
