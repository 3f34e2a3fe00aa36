"""Wire models of the reading service (docs/reading.md), named as the original API names them.

Response models allow extra fields: Percept adds word timings (``words``) to audio
segments and the word-level ``report`` to comparison results, beyond the original.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class UploadFileResponse(BaseModel):
    file_id: UUID


class ModelData(BaseModel):
    name: str
    languages: list[str]
    description: str


class ModelsDataReponse(BaseModel):  # the spec's spelling
    models: list[ModelData]


class TaskCreateResponse(BaseModel):
    task_id: UUID


class TaskStatusResponse(_Open):
    task_id: str
    status: str
    ready: bool


class AudioProcessingRequest(BaseModel):
    audio_file: UUID
    audio_model: str


class AudioExtractPhrasesRequest(BaseModel):
    audio_file: UUID
    audio_model: str
    phrases: list[str] = Field(max_length=1000)


class ImageProcessingRequest(BaseModel):
    image_file: UUID
    image_model: str


class AudioToImageComparisonRequest(BaseModel):
    audio_file: UUID
    image_file: UUID
    audio_model: str
    image_model: str


class AudioToTextComparisonRequest(BaseModel):
    audio_file: UUID
    text: list[str]
    audio_model: str


class AudioChunk(_Open):
    start: float
    end: float
    text: str
    file: UUID


class AudioProcessingResponse(_Open):
    text: str
    segments: list[AudioChunk]


class IPRPoint(BaseModel):
    x: int
    y: int


class IPRRectangle(BaseModel):
    left_top: IPRPoint
    right_top: IPRPoint
    left_bottom: IPRPoint
    right_bottom: IPRPoint


class IPRTextBox(_Open):
    text: str
    coordinates: IPRRectangle


class ImageProcessingResponse(_Open):
    text: str
    boxes: list[IPRTextBox]


class AudioPhrase(_Open):
    audio_segment: AudioChunk | None = None
    found: bool
    phrase: str


class AudioExtractPhrasesResponse(BaseModel):
    data: list[AudioPhrase]


class TextDiff(BaseModel):
    audio_segment: AudioChunk | None
    at_char: int
    found: str
    expected: str


class AudioTextComparisonResultsResponse(_Open):
    audio: AudioProcessingResponse
    errors: list[TextDiff]
    report: dict[str, Any] | None = None


class AudioImageComparisonResultsResponse(AudioTextComparisonResultsResponse):
    image: ImageProcessingResponse
