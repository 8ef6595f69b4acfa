"""Repository-wide pytest set-up (loaded for tests/ and notebooks/ alike)."""

import os

# Notebooks executed by nbmake inherit this and run their fast variant (fewer images and steps).
os.environ.setdefault("FACETOON_FAST", "1")
