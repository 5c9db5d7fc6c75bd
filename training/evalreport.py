"""The result of one evaluation run: per-image scores, their means, text and JSON forms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Layout = Literal["matting", "segmentation"]

# Baseline scores sit in the same dict as the model's, under prefixed names.
BASELINE_PREFIX = "baseline_"
# The means on which the model is compared with the baseline (lower is better for both).
BEATS_ON = ("sad", "trans_mse")


@dataclass(frozen=True)
class ImageScore:
    """The metrics of one image: {metric name: value}."""

    name: str
    metrics: dict[str, float]


@dataclass
class EvalReport:
    """Scores of a predictor on a dataset folder.

    layout: "matting" or "segmentation".
    rows: one ImageScore per image, in evaluation order.
    mean: each metric's mean over the images.
    beats_baseline: {"sad": bool, "trans_mse": bool}, True where the model's mean
        is strictly lower than the blurred-mask baseline's; None without a baseline.
    settings: how the numbers were made (transition region, band, baseline sigma).
    """

    layout: Layout
    data_dir: str
    rows: list[ImageScore]
    mean: dict[str, float]
    beats_baseline: dict[str, bool] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls,
        layout: Layout,
        data_dir: str,
        rows: Sequence[ImageScore],
        settings: dict[str, Any] | None = None,
    ) -> EvalReport:
        """Average the rows (which must share their metric names) and compare with the baseline."""
        if not rows:
            raise ValueError("an evaluation report needs at least one image")
        keys = list(rows[0].metrics)
        mean = {k: math.fsum(r.metrics[k] for r in rows) / len(rows) for k in keys}
        beats = None
        if all(BASELINE_PREFIX + k in mean for k in BEATS_ON):
            beats = {k: mean[k] < mean[BASELINE_PREFIX + k] for k in BEATS_ON}
        return cls(layout, data_dir, list(rows), mean, beats, dict(settings or {}))

    @property
    def model_metrics(self) -> list[str]:
        """The model's metric names, in column order (baseline names left out)."""
        return [k for k in self.mean if not k.startswith(BASELINE_PREFIX)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: layout, settings, count, means, baseline verdict, per-image rows."""
        return {
            "layout": self.layout,
            "data_dir": self.data_dir,
            "settings": dict(self.settings),
            "count": len(self.rows),
            "mean": dict(self.mean),
            "beats_baseline": None if self.beats_baseline is None else dict(self.beats_baseline),
            "images": [{"name": r.name, **r.metrics} for r in self.rows],
        }

    def to_table(self) -> str:
        """An aligned text table: one row per image, a mean row, then the baseline if any."""
        cols = self.model_metrics
        body: list[tuple[str, list[str]]] = [
            (r.name, [_fmt(r.metrics[k]) for k in cols]) for r in self.rows
        ]
        body.append(("mean", [_fmt(self.mean[k]) for k in cols]))
        has_baseline = all(BASELINE_PREFIX + k in self.mean for k in cols)
        if has_baseline:
            body.append(("baseline", [_fmt(self.mean[BASELINE_PREFIX + k]) for k in cols]))

        name_w = max(len("name"), *(len(name) for name, _ in body))
        widths = [max(len(k), *(len(vals[i]) for _, vals in body)) for i, k in enumerate(cols)]

        def line(name: str, vals: Sequence[str]) -> str:
            cells = [v.rjust(w) for v, w in zip(vals, widths, strict=True)]
            return "  ".join([name.ljust(name_w), *cells]).rstrip()

        header = line("name", cols)
        out = [self._title(), header, "-" * len(header)]
        out += [line(name, vals) for name, vals in body[: len(self.rows)]]
        out.append("-" * len(header))
        out += [line(name, vals) for name, vals in body[len(self.rows) :]]
        if self.beats_baseline is not None:
            verdicts = [
                f"{k} {'better' if won else 'not better'} "
                f"({_fmt(self.mean[k])} vs {_fmt(self.mean[BASELINE_PREFIX + k])})"
                for k, won in self.beats_baseline.items()
            ]
            out.append("model vs blurred-mask baseline (mean): " + "; ".join(verdicts))
        return "\n".join(out)

    def _title(self) -> str:
        extra = "; ".join(f"{k}: {v}" for k, v in self.settings.items())
        title = f"{self.layout} evaluation of {len(self.rows)} image(s) in {self.data_dir}"
        return f"{title} ({extra})" if extra else title


def _fmt(value: float) -> str:
    return f"{value:.5f}"
