"""Recipes: targets."""
