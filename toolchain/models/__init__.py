"""Architectures, model cards and model bundles (safetensors + model.json)."""
