"""The HTTP API's request and response bodies as pydantic models: validated on the way in, and the source of the
OpenAPI document (:mod:`bot.api.openapi`) so the document and the server cannot disagree."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileOut(_Model):
    """An uploaded table, as the inspection read it (the same reading every analysis uses)."""

    file_id: str
    name: str
    size: int = Field(description="Bytes uploaded.")
    rows: int = Field(description="Data rows (the header excluded); exact when `rows_exact`.")
    rows_exact: bool
    columns: int
    dtypes: dict[str, str] = Field(description="Column name → detected type (the first columns of a wide table).")
    read_options: dict[str, Any] = Field(description="How the file is read (the pandas call's options).")


class TurnOut(_Model):
    """One analysis run in a session (analyze or refine), newest last in a session."""

    turn_id: str
    kind: Literal["analyze", "refine"]
    question: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created_at: float
    finished_at: float | None = None
    cost_usd: float = 0.0
    error: str | None = None
    status_url: str


class SessionOut(_Model):
    """A session: its files, when its workspace expires if left idle, and its turns."""

    session_id: str
    files: list[FileOut]
    created_at: float
    last_active_at: float
    expires_at: float = Field(description="When the workspace expires if left idle (Unix seconds); a later call "
                                          "rebuilds it from the files.")
    turns: list[TurnOut] = Field(default_factory=list)


class AngleOut(_Model):
    """A story the data could tell; refine it with its `id`."""

    id: str
    title: str
    summary: str


class AnalyzeOut(_Model):
    """The story angles of a session's data."""

    angles: list[AngleOut]
    turn_id: str


class RefineAngle(_Model):
    """Tell the full story of one angle of the session's last analyze."""

    angle_id: str = Field(min_length=1, max_length=64)


class RefineQuestion(_Model):
    """Answer a question of your own about the session's data."""

    question: str = Field(min_length=1, max_length=4000)


class RefineIn(RootModel[RefineAngle | RefineQuestion]):
    """What to tell the full story of: ``{"angle_id": …}`` or ``{"question": …}``, exactly one."""

    @property
    def angle_id(self) -> str | None:
        """The angle asked for, if any."""
        return self.root.angle_id if isinstance(self.root, RefineAngle) else None

    @property
    def question(self) -> str | None:
        """The question asked, if any."""
        return self.root.question if isinstance(self.root, RefineQuestion) else None

    @classmethod
    def of(cls, *, angle_id: str | None = None, question: str | None = None) -> RefineIn:
        """Built from keywords (exactly one)."""
        return cls.model_validate({"angle_id": angle_id} if angle_id is not None else {"question": question})


class OutputFile(_Model):
    """A chart or a result file the analysis wrote; `url` streams it (with the same key)."""

    file_id: str
    name: str
    size: int
    url: str


class RefineOut(_Model):
    """The full story: the narrative (Markdown), its charts and result files, the code that ran."""

    turn_id: str
    narrative: str
    charts: list[OutputFile]
    result_files: list[OutputFile]
    code: str
    cost_usd: float = 0.0
    notes: str = Field(default="", description="Files the code wrote that were not attached, and why.")


class TurnResult(_Model):
    """A turn asked with `Prefer: respond-async`: its state and, once done, its result."""

    turn: TurnOut
    result: RefineOut | AnalyzeOut | None = None


class Problem(_Model):
    """RFC 9457 problem details: a stable `code` to branch on and a human `detail`."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    code: str
    detail: str


class ApiKeyOut(_Model):
    """A key as `datastory api-key list` shows it (never its secret)."""

    id: str
    name: str
    created_at: float
    revoked_at: float | None = None
