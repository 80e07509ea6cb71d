"""Hypothesis profiles: ``ci`` (derandomised, 200 examples) when CI is set, else ``dev``.

Choose one explicitly with ``HYPOTHESIS_PROFILE=ci pytest``.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=200, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
