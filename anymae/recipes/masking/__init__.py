"""Recipes: masking."""
