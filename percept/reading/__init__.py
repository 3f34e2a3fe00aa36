"""Reading assessment ("Follow My Reading", docs/reading.md): Ray-free algorithms and cores.

* :mod:`percept.reading.audio` — ``dbfs_to_fraction``, ``fraction_to_dbfs``, ``split_audio``,
  ``split_silence`` and audio conversion.
* :mod:`percept.reading.text` — ``match_words``, ``match_phrases``, ``find_phrases``.
* :mod:`percept.reading.report` — the word-level reading report (alignment with timestamps).
"""
