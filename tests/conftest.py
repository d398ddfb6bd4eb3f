"""Shared pytest setup: hypothesis runs are deterministic and modest (CI has 2 cores).

HYPOTHESIS_PROFILE=thorough runs the same properties with more examples.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=25, print_blob=True)
settings.register_profile("thorough", derandomize=True, deadline=None, max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
