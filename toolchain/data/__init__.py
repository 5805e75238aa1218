"""Data sets: layouts (``layouts``), the image loader (``images``), augmentations (``augment``),
subject-disjoint splits and verification protocols (``splits``), the synthetic generator (``synth``)."""
