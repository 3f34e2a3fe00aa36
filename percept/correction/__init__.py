"""Dataset correction ("image correction" jobs): Ray-free cores of the correction service.

``interface`` holds the spec's Python interface (``start_ic_processing_job``,
``get_image_metadata``); ``job`` runs one job; ``features`` is the Ray Data batch callable;
``analysis`` and ``handlers`` find and fix mislabeled images, split classes, blur and
lighting; ``images`` measures and repairs one image (or a batch of equal-size ones);
``report`` draws the HTML report. Test data: ``tests/synthetic/correction.py``.
"""
