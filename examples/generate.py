"""Generate the example datasets in this folder (deterministic; run ``python examples/generate.py``).

- ``sales.csv``: monthly revenue and units by region and product line, two years, with a seasonal swing,
  one region growing faster and a dip in one month.
- ``web_traffic.csv``: daily sessions, sign-ups and bounce rate by channel for a quarter.
- ``support_tickets.csv``: one row per ticket with priority, category, timestamps and satisfaction.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sales(rng: random.Random) -> list[dict[str, object]]:
    growth = {"North": 0.010, "South": 0.004, "East": 0.022, "West": 0.007}
    base = {"North": 52000, "South": 41000, "East": 30000, "West": 46000}
    products = {"Hardware": 0.55, "Software": 0.30, "Services": 0.15}
    rows = []
    for m in range(24):
        month = date(2024 + m // 12, m % 12 + 1, 1)
        season = 1 + 0.12 * math.sin((m % 12) / 12 * 2 * math.pi - 1.2)
        for region, g in growth.items():
            dip = 0.78 if (region == "South" and m == 14) else 1.0
            for product, share in products.items():
                revenue = base[region] * share * (1 + g) ** m * season * dip * rng.uniform(0.93, 1.07)
                price = {"Hardware": 420, "Software": 180, "Services": 95}[product]
                rows.append({"month": month.isoformat(), "region": region, "product": product,
                             "revenue": round(revenue, 2), "units": max(1, round(revenue / price)),
                             "returns": rng.randint(0, max(1, round(revenue / price / 40)))})
    return rows


def web_traffic(rng: random.Random) -> list[dict[str, object]]:
    channels = {"organic": 1800, "paid": 950, "social": 620, "email": 310, "referral": 240}
    rows = []
    for d in range(92):
        day = date(2025, 7, 1) + timedelta(days=d)
        weekend = day.weekday() >= 5
        for channel, base in channels.items():
            campaign = 1.6 if channel == "paid" and 40 <= d < 54 else 1.0
            sessions = round(base * (0.72 if weekend else 1.0) * campaign * rng.uniform(0.85, 1.15))
            rate = {"organic": 0.031, "paid": 0.024, "social": 0.012, "email": 0.052, "referral": 0.041}[channel]
            rows.append({"date": day.isoformat(), "channel": channel, "sessions": sessions,
                         "signups": round(sessions * rate * rng.uniform(0.7, 1.3)),
                         "bounce_rate": round(rng.uniform(0.28, 0.62) + (0.08 if channel == "social" else 0), 3)})
    return rows


def support_tickets(rng: random.Random) -> list[dict[str, object]]:
    categories = ["billing", "login", "bug", "feature request", "data export", "performance"]
    priorities = ["low", "normal", "high", "urgent"]
    agents = ["Ana", "Ben", "Chloé", "Dmitri", "Eve", "Farid"]
    rows = []
    start = datetime(2025, 9, 1, 8, 0)
    for i in range(1, 1201):
        opened = start + timedelta(minutes=rng.randint(0, 60 * 24 * 60))
        priority = rng.choices(priorities, weights=[30, 45, 18, 7])[0]
        category = rng.choices(categories, weights=[20, 18, 25, 10, 12, 15])[0]
        hours = rng.lognormvariate({"low": 3.2, "normal": 2.6, "high": 1.8, "urgent": 0.9}[priority], 0.6)
        resolved = opened + timedelta(hours=hours) if rng.random() > 0.06 else None
        rows.append({"ticket_id": f"T-{i:05d}", "opened_at": opened.isoformat(timespec="minutes"),
                     "resolved_at": resolved.isoformat(timespec="minutes") if resolved else "",
                     "priority": priority, "category": category, "agent": rng.choice(agents),
                     "satisfaction": rng.choice([1, 2, 3, 4, 4, 5, 5, 5]) if resolved else ""})
    return sorted(rows, key=lambda r: str(r["opened_at"]))


def write(name: str, rows: list[dict[str, object]]) -> None:
    with (HERE / name).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    write("sales.csv", sales(random.Random(7)))
    write("web_traffic.csv", web_traffic(random.Random(11)))
    write("support_tickets.csv", support_tickets(random.Random(13)))


if __name__ == "__main__":
    main()
