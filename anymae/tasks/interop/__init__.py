"""Weights in and out: one module per reference release format, and export of pretrained models."""
