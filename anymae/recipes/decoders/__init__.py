"""Recipes: decoders."""
