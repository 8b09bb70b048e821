"""Precomputed feature sequences on disk (`.npy` / `.safetensors`, one L×F array per clip)."""
