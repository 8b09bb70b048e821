"""Paired views on disk (CroCo's image pairs): `<name>_1.<ext>` / `<name>_2.<ext>` files."""
