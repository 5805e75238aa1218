"""compress/pruning."""
