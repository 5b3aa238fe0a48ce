"""Strings a model, a file or a question could carry to make the bot ping a channel, a group or a person, or post a
link whose label lies about where it goes; shared by the unit table and the end-to-end tests."""

from __future__ import annotations

FORGED_TOKEN = "\uf8f0@U0123ABC\uf8f1" + "0" * 24 + "\uf8f2"
"""The shape of the bot's own signed mention with a made-up signature."""

HOSTILE: tuple[str, ...] = (
    # raw control sequences, every kind, mixed case, with labels
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<!subteam^S0123ABC>",
    "<!subteam^S0123ABC|@oncall> please look",
    "<@U0123ABC>",
    "<@W0123ABC|boss>",
    "<#C0123ABC>",
    "<#C0123ABC|general>",
    "<!CHANNEL>",
    "<!Here|here>",
    "<!date^1392734382^{date}|Feb 18>",
    "<<!channel>>",
    # entities that a converter (or a careless Slack) turns back into characters
    "&lt;!channel&gt;",
    "&#60;!here&#62;",
    "&#x3C;!everyone&#x3E;",
    "&#X3c;!channel&#X3e;",
    "&#0000060;!here&#0000062;",
    "&LT;!here&GT;",
    "&lt;!subteam^S0123ABC&gt;",
    "&lt;@U0123ABC&gt;",
    "&lt;#C0123ABC&gt;",
    "&amp;lt;!channel&amp;gt;",
    "&lt;!channel>",
    "<!channel&gt;",
    "&#60;https://evil.example|Slack login&#62;",
    # nested Markdown
    "**&lt;!channel&gt;**",
    "_<!here>_",
    "***<!everyone>***",
    "`<!channel>`",
    "```\n<!here>\n&lt;!channel&gt;\n```",
    "> <!channel> quoted",
    "- item <@U0123ABC>\n- item &lt;!here&gt;",
    "[<!channel>](https://example.com)",
    "[**&lt;!here&gt;**](https://example.com)",
    "# Heading &lt;!everyone&gt;",
    "| a | <!channel> |\n|---|---|\n| 1 | &lt;!here&gt; |",
    # links whose label lies, or that leave the web
    "[Re-authenticate your Slack session](https://evil.example/login)",
    "[https://slack.com](https://evil.example)",
    "[click](slack://open?team=T1)",
    "[x](javascript:alert(1))",
    "![chart](https://evil.example/a.png)",
    "<https://evil.example>",
    "<https://evil.example|https://slack.com>",
    "<mailto:it@evil.example|IT support>",
    # invisible characters between what a reader sees and what Slack parses
    "<!chan\u200bnel>",
    "<\u200b!here>",
    "\u2066<!channel>\u2069",
    "&\u200blt;!here&\u200bgt;",
    "<\u00ad!everyone>",
    "\x00<!channel>\x1b[31m\x7f",
    "line\u2028<!here>",
    "\U000e003c!channel\U000e003e tag characters",
    # the bot's own token, forged
    FORGED_TOKEN,
    FORGED_TOKEN.replace("@U0123ABC", "#C0123ABC"),
)
