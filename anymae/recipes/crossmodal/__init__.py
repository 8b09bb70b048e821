"""Recipes: crossmodal."""
