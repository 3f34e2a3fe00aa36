"""Wire models of the tagger (Detect ``/process``): request documents and the envelope."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OD_PROMPT = "<OD>"


class TaggerSource(BaseModel):
    """A document's ``source``: base64 ``content`` and its metadata (echoed back).

    Lenient on purpose: a bad field of one document must make that document "not treated",
    not the whole request malformed, so only ``content``'s type is checked (later).
    """

    model_config = ConfigDict(extra="allow")

    content: Any = None
    file_type: str | None = None
    file_name: str | None = None
    fs: Any = None
    embedded_depth: Any = None

    @field_validator("file_type", "file_name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return None if value is None else str(value)


class TaggerDocument(BaseModel):
    """One document to tag; unknown fields are kept and echoed back."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    index: Any = None
    source: TaggerSource = Field(default_factory=TaggerSource)

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        # Detect ids are uuids; numeric ids are accepted and compared as text.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value


class TaggerRequest(BaseModel):
    """``POST /process`` body."""

    model_config = ConfigDict(extra="allow")

    documents: list[TaggerDocument]
    num_labels: int = Field(5, ge=1, le=1000)
    # Florence-2 style prompt of the original's second model: only "<OD>" (object counts) has a
    # meaning here; any other prompt is read as "labels".
    prompt: str | None = Field(None, description='"<OD>" asks for object counts instead of labels')
    detection_threshold: float | None = Field(None, ge=0.0, le=1.0, description="overrides the configured one")

    @model_validator(mode="before")
    @classmethod
    def _num_classes_alias(cls, value: Any) -> Any:
        # The spec's prose calls the parameter num_classes, its parameter list num_labels:
        # accept both, num_labels first.
        if isinstance(value, dict) and "num_labels" not in value and "num_classes" in value:
            value = {**value, "num_labels": value["num_classes"]}
        return value

    @field_validator("num_labels", mode="before")
    @classmethod
    def _numeric_string(cls, value: Any) -> Any:
        """``num_labels`` as an int or a numeric string ("5"); anything else is refused."""
        if isinstance(value, bool):
            raise ValueError("num_labels must be an integer")
        if value is None:
            return 5
        if isinstance(value, str):
            text = value.strip()
            if not text.lstrip("+").isdigit():
                raise ValueError(f"num_labels must be an integer or a numeric string, not {value!r}")
            return int(text)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("num_labels must be a whole number")
            return int(value)
        return value

    @property
    def wants_counts(self) -> bool:
        """Whether the second output shape (object counts) is asked for."""
        return (self.prompt or "").strip().upper() == OD_PROMPT


class TaggerStatus(BaseModel):
    code: int = 200
    message: str = "Success"


class TaggerResponse(BaseModel):
    """The Detect envelope of every answer (``Index_Response`` in the original)."""

    status: TaggerStatus = Field(default_factory=TaggerStatus)
    data: list[dict[str, Any]] = Field(default_factory=list)
    error: str = ""
    number_documents_treated: int = 0
    number_documents_non_treated: int = 0
    list_id_not_treated: list[dict[str, str]] = Field(default_factory=list)
    memory_used: str = ""
    ram_used: str = ""
