"""The side-by-side speed comparison; run it as ``python -m replk_ops.bench``."""
