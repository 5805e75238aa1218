"""The one training loop (``loop``), its heads, checkpoints, validation and multi-process support;
``run`` is ``deploy train``."""
