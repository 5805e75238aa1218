"""Pruning, one module per family: ``unstructured`` (the five ShrinkBench methods, masks in
``masks``, schedules in ``schedule``), ``structured`` (channel/width pruning with Torch-Pruning)
and ``depth`` (removing residual blocks, width multipliers)."""
