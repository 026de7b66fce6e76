"""`date_normalization`: dates written in many human formats, to ISO 8601."""

from __future__ import annotations

import datetime
import random

import tensorflow_datasets as tfds

from keras_s2s.data.builders.generated import GeneratedTask, GeneratedTaskConfig

_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_FIRST = datetime.date(1950, 1, 1)
_LAST = datetime.date(2049, 12, 31)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _formats(d: datetime.date) -> list[str]:
    # Two-digit years are unambiguous because dates span 1950-2049; day/month order is
    # always day first for numeric formats, so no string maps to two dates.
    month, mon = _MONTHS[d.month - 1], _MONTHS[d.month - 1][:3]
    day, dy = _DAYS[d.weekday()], _DAYS[d.weekday()][:3]
    yy = d.year % 100
    return [
        f"{month} {d.day}, {d.year}",
        f"{month.capitalize()} {d.day}, {d.year}",
        f"{d.day:02d}/{d.month:02d}/{yy:02d}",
        f"{mon.capitalize()} {d.day} {d.year}",
        f"{day}, {d.day} {month} {d.year}",
        f"{d.day} {month.capitalize()} {d.year}",
        f"{d.day:02d}.{d.month:02d}.{d.year}",
        f"{d.year}/{d.month:02d}/{d.day:02d}",
        f"{mon.capitalize()} {d.day}, {d.year}",
        f"{day.upper()}, {month.upper()} {d.day}, {d.year}",
        f"{d.day} {mon} {d.year}",
        f"{d.day}-{mon.capitalize()}-{d.year}",
        f"{dy.capitalize()}, {d.day} {mon.capitalize()} {d.year}",
        f"the {_ordinal(d.day)} of {month}, {d.year}",
        f"{month.capitalize()} {_ordinal(d.day)}, {d.year}",
        f"{d.day}/{d.month}/{d.year}",
    ]


NUM_FORMATS = len(_formats(_FIRST))


def sample_date_example(rng: random.Random) -> tuple[str, str]:
    """Returns one (human date, ISO date) pair drawn with `rng`."""
    span = (_LAST - _FIRST).days
    d = _FIRST + datetime.timedelta(days=rng.randint(0, span))
    return rng.choice(_formats(d)), d.isoformat()


class DateNormalization(GeneratedTask):
    """Dates in 16 human formats ("september 27, 1994", "27/09/94", "Sep 27 1994", ...) to ISO.

    Generated offline and deterministically from the config's seed; the splits are disjoint by
    source string.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "1.1.0": "Shuffle the distinct examples before cutting the splits.",
    }
    BUILDER_CONFIGS = [
        GeneratedTaskConfig(name="default", description="50k/5k/5k examples."),
        GeneratedTaskConfig(
            name="small",
            train_size=5000,
            validation_size=500,
            test_size=500,
            description="5k/500/500 examples, for quick experiments and tests.",
        ),
    ]

    def sample(self, rng: random.Random) -> tuple[str, str]:
        return sample_date_example(rng)


__all__ = ["DateNormalization", "sample_date_example"]
