"""``service_config.reading``: the reading service's settings, validated once."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from percept.settings import ServiceSettings

# The plugin names of the original project (its clients send them), and ours.
ORIGINAL_MODEL_NAMES = {"whisper": "faster_whisper", "eng_tesseract": "tesseract"}


class ReadingSettings(ServiceSettings):
    """Limits and knobs of the reading service (all optional in serve_config.yaml)."""

    rate_limit_per_minute: int = Field(120, ge=1, description="per user and path (429 + Retry-After past it)")
    max_audio_mb: float = Field(50, gt=0, description="upload size limit of a recording (413 past it)")
    max_audio_duration_s: float = Field(1800, gt=0, description="longest recording accepted (422 past it)")
    max_image_mb: float = Field(20, gt=0, description="upload size limit of a photo (413 past it)")
    max_image_pixels: int = Field(50_000_000, gt=0, description="largest photo accepted (422 past it)")
    segment_max_s: float = Field(30.0, gt=1, description="longest audio segment cut on silence")
    silence_percent: float = Field(5.0, gt=0, lt=100, description="silence: below this % of the loudest sample")
    long_pause_s: float = Field(1.0, gt=0, description="a gap between words at least this long is a long pause")
    forced_scoring: bool = Field(True, description="score the reference and the transcript's wording against the audio (the acoustic verdicts); off: transcript diffing alone")
    miscue_threshold: float = Field(
        14.0, ge=-50, le=50,
        description="log-likelihood ratio (nats) of a candidate misreading over the text above which the "
                    "miscue is reported; chosen on the tuning half of benchmarks/reading_miscues.py")
    added_word_threshold: float = Field(
        3.0, ge=-50, le=50,
        description="the same for an added word (insertion, repetition, false start): Whisper scores an "
                    "extra word more weakly than a replaced one; chosen with miscue_threshold")
    omission_threshold: float | None = Field(
        -3.0, ge=-50, le=50,
        description="the same for a skipped word (null: miscue_threshold); chosen with miscue_threshold")
    repeat_threshold: float | None = Field(
        -3.0, ge=-50, le=50,
        description="the same for the repetition every word is tested for when no transcript heard it (null: "
                    "added_word_threshold); chosen with miscue_threshold")
    onset_added_threshold: float | None = Field(
        2.0, ge=-50, le=50,
        description="the same for an added word a transcript heard before a segment's first word (Whisper "
                    "hears short words at the onset of speech that were never said; null: added_word_threshold); "
                    "chosen with miscue_threshold")
    onset_omission_threshold: float | None = Field(
        9.0, ge=-50, le=50,
        description="the same for a segment's first word skipped (at the onset of speech cut on silence Whisper "
                    "misses short first words that were said; null: omission_threshold); chosen with "
                    "miscue_threshold")
    prior_weight: float = Field(
        0.5, ge=0, le=2,
        description="share of Whisper's language-model opinion (each candidate's likelihood ratio against "
                    "silence) taken out of the evidence; chosen with the thresholds on the tuning half")
    aligner_context_pad_s: float | None = Field(
        3.0, ge=0, le=30,
        description="the aligner's encoder sees each segment plus this much silence instead of Whisper's whole "
                    "30 s window (null): encoding and every forced scoring cost in proportion")
    probe_words: int = Field(
        6, ge=0, le=50,
        description="per segment, at most this many reference words where Whisper, teacher-forced through the "
                    "page's words before the word (no context), prefers another word's first token by more than "
                    "probe_margin nats: that word becomes a candidate reading too (scored like the transcripts' "
                    "differences); 0: off; chosen on the tuning half of benchmarks/reading_miscues.py (round 16)")
    probe_margin: float = Field(
        0.5, ge=0, le=20,
        description="nats by which Whisper must prefer the other word's first token (probe_words)")
    false_start_logprob: float | None = Field(
        -2.0, ge=-50, le=0,
        description="a repetition whose first copy the audio holds below this forced log-probability was a "
                    "false start (self-correction); chosen on the tuning half of benchmarks/reading_miscues.py")
    false_start_echo: float | None = Field(
        -0.225, ge=-2, le=2,
        description="an added word whose audio is closer to the next word's than to the previous word's "
                    "(log-mel distances, 0 the same sound) by at least minus this was a false start of the next "
                    "word (self-correction), however the recogniser spelt it; null: off; chosen on the tuning "
                    "half of benchmarks/reading_miscues.py")
    next_word_logprob: float | None = Field(
        -10.0, ge=-50, le=0,
        description="an added word whose reading leaves the next reference word's forced log-probability "
                    "below this was said instead of that word: a substitution of it, not an insertion; null: "
                    "off; chosen on the tuning half of benchmarks/reading_miscues.py (round 15)")
    repeat_syllable_weight: float | None = Field(
        5.0, ge=0, le=50,
        description="nats added to the evidence of a word said twice that no transcript heard when the audio "
                    "around it holds more syllable nuclei (band-energy peaks) than the page's words have "
                    "syllables, and taken from it when it holds none more; null: off; chosen on the tuning half "
                    "of benchmarks/reading_miscues.py (round 17)")
    evidence_weights: dict[str, float] | None = Field(
        None,
        description="optional evidence model (percept.reading.verdict.FEATURES -> weight): the thresholds then "
                    "apply to its log-odds instead of the likelihood ratio; off by default (fitted on the "
                    "tuning half it generalised worse across voices, see docs/reading.md)")
    word_time_shift_s: float = Field(
        -0.09, ge=-1, le=1,
        description="added to Whisper's forced word times, which lag the speech; measured on the tuning "
                    "half of benchmarks/reading_miscues.py")
    model_aliases: dict[str, str] = Field(
        default_factory=lambda: dict(ORIGINAL_MODEL_NAMES),
        description="other names clients may use for a plugin (default: the original project's names, "
                    "whisper -> faster_whisper, eng_tesseract -> tesseract); listed by /v1/*/models")
    max_phrases: int = Field(200, ge=1, description="phrases per extraction request")
    max_text_chars: int = Field(100_000, ge=1, description="reference text per comparison request")

    @field_validator("evidence_weights")
    @classmethod
    def _known_features(cls, weights: dict[str, float] | None) -> dict[str, float] | None:
        """A misspelt feature would weigh nothing without a word: refuse it at start-up."""
        from percept.reading.verdict import FEATURES

        unknown = sorted(set(weights or {}) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {list(FEATURES)}")
        return weights

    @model_validator(mode="after")
    def _prior_needs_the_ratio(self) -> ReadingSettings:
        """The prior is taken out of the likelihood ratio, which an evidence model does not read:
        both set, one would be ignored without a word."""
        if self.evidence_weights and self.prior_weight > 0:
            raise ValueError("prior_weight applies to the likelihood ratio; with evidence_weights set it "
                             "must be 0")
        return self

    def plugin_name(self, name: str) -> str:
        """The plugin a client's model name means (an alias resolved; other names unchanged)."""
        return self.model_aliases.get(name, name)
