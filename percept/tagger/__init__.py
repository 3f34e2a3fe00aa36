"""The image tagger (Detect ``/process``): Ray-free cores and algorithms.

``settings`` (the ``service_config.tagger`` section), ``media`` (decoding documents and
sampling video frames), ``aggregate`` (top-k labels, video labels with timestamps, object
counts), ``classifier`` / ``detector`` (model cores), ``jobs`` (the bounded job log behind
``/work/status``) and ``process`` (the request pipeline over the model handles).
Test and benchmark media are made by ``tests/synthetic/tagger.py``.
"""
