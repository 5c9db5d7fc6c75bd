"""The job record and its Redis hash form (every value a string; strict when read back)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from matting.errors import MattingError

_T = TypeVar("_T")
_JOB_ID_RE = re.compile(r"[0-9a-f]{32}")


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class MalformedJobError(MattingError):
    """A job hash in Redis is missing a field or holds a value of the wrong kind."""


def new_job_id() -> str:
    """A fresh job id: 32 hex digits, always made by the service, never taken from a client."""
    return uuid.uuid4().hex


def is_job_id(value: str) -> bool:
    """Whether value has the shape of a job id (check before building a key from user input)."""
    return _JOB_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Job:
    """One video job as the queue stores it. Times are Unix seconds.

    chunks_done is the resume point: the chunks [0, chunks_done) are finished and stored, so a
    worker that takes the job over starts at chunk chunks_done. attempts counts tries: the
    deliveries less the hand-backs of workers that shut down (releases).
    """

    id: str
    state: JobState
    created_at: float
    updated_at: float
    input_location: str
    options: dict[str, Any] = field(default_factory=dict)
    output_location: str | None = None
    frames_done: int = 0
    frames_total: int | None = None
    chunks_done: int = 0
    progress: float = 0.0
    eta_s: float | None = None
    error: str | None = None
    attempts: int = 0
    releases: int = 0
    worker: str | None = None
    retry_at: float | None = None  # set while a failed job waits out its backoff
    finished_at: float | None = None
    entry_id: str | None = None  # the jobs stream entry that carries it

    def to_hash(self) -> dict[str, str]:
        """The Redis hash form: every field as a string, None as ""."""
        out: dict[str, str] = {}
        for f in dataclasses.fields(self):
            out[f.name] = _encode(getattr(self, f.name))
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (state as its string value) for API answers and logs."""
        out = dataclasses.asdict(self)
        out["state"] = self.state.value
        return out

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any], key: str = "job hash") -> Job:
        """Parse a hash read from Redis (str or bytes); MalformedJobError names what is wrong."""
        h = {_text(k): _text(v) for k, v in raw.items()}
        if not h:
            raise MalformedJobError(f"{key}: empty or missing")

        def req(name: str, parse: Callable[[str], _T]) -> _T:
            if name not in h:
                raise MalformedJobError(f"{key}: field {name!r} is missing")
            return _parse(key, name, h[name], parse)

        def opt(name: str, parse: Callable[[str], _T]) -> _T | None:
            value = h.get(name, "")
            return None if value == "" else _parse(key, name, value, parse)

        job_id = req("id", _job_id)
        return cls(
            id=job_id,
            state=req("state", JobState),
            created_at=req("created_at", _finite),
            updated_at=req("updated_at", _finite),
            input_location=req("input_location", _nonempty),
            options=req("options", _json_object),
            output_location=opt("output_location", _nonempty),
            frames_done=opt("frames_done", _count) or 0,
            frames_total=opt("frames_total", _count),
            chunks_done=opt("chunks_done", _count) or 0,
            progress=opt("progress", _fraction) or 0.0,
            eta_s=opt("eta_s", _finite),
            error=opt("error", str),
            attempts=opt("attempts", _count) or 0,
            releases=opt("releases", _count) or 0,
            worker=opt("worker", str),
            retry_at=opt("retry_at", _finite),
            finished_at=opt("finished_at", _finite),
            entry_id=opt("entry_id", str),
        )


def encode_options(options: Mapping[str, Any]) -> str:
    """Options as compact JSON; TypeError/ValueError for what JSON cannot hold."""
    return json.dumps(dict(options), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _encode(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, JobState):
        return value.value
    if isinstance(value, dict):
        return encode_options(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _parse(key: str, name: str, value: str, parse: Callable[[str], _T]) -> _T:
    try:
        return parse(value)
    except (ValueError, TypeError) as exc:
        raise MalformedJobError(
            f"{key}: field {name!r} = {value[:80]!r} is invalid ({exc})"
        ) from exc


def _job_id(value: str) -> str:
    if not is_job_id(value):
        raise ValueError("not 32 hex digits")
    return value


def _nonempty(value: str) -> str:
    if not value:
        raise ValueError("empty")
    return value


def _finite(value: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    return number


def _fraction(value: str) -> float:
    number = _finite(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError("not in [0, 1]")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("negative")
    return number


def _json_object(value: str) -> dict[str, Any]:
    decoded = json.loads(value)
    if not isinstance(decoded, dict):
        raise ValueError("not a JSON object")
    return decoded
