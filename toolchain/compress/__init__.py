"""Compression: pruning (``pruning/``: unstructured, structured width, depth), knowledge
distillation (``distill``), measurement (``measure``), and the end-to-end runs behind
``deploy prune`` / ``deploy distill`` (``run``)."""
