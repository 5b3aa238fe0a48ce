"""``datastory demo`` and the Slack emulator it runs on, which the tests drive the bot through as well.

The emulator (:mod:`bot.demo.fake_slack` and its parts) speaks the Web API the bot uses, hosts files and signs
events like Slack; :mod:`bot.demo.page` serves a Slack-like channel page from the emulator's own aiohttp
application; :mod:`bot.demo.runner` starts the real bot against it. Nothing in the core imports this package
(a test checks it), and nothing here but the runner imports the bot.
"""
