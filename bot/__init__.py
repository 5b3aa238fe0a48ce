"""datastory: a Slack bot that turns a CSV into an analysis in its thread.

The package holds the Slack-independent core; ``bot.app`` is the composition root. Importing this package
imports nothing else, so ``handlers`` can import core modules without cycles.
"""

__version__ = "0.1.0"
