"""Logging set-up for the command line: one line per record, key=value context, quiet third-party clients.

The SDKs log request details at DEBUG (URLs, sometimes headers); they stay at WARNING unless the bot itself runs
at DEBUG, so a token or a file's content never reaches the log through them.
"""

from __future__ import annotations

import logging
import logging.config

NOISY = ("slack_sdk", "slack_bolt", "openai", "httpx", "httpx2", "httpcore", "aiohttp.access", "asyncio")


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger (called by the CLI only); an embedding program's handlers are left alone."""
    if logging.getLogger().handlers:
        return
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["stderr"], "level": numeric},
    })
    for name in NOISY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING) if numeric > logging.DEBUG else numeric)
