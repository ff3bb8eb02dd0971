"""Readers of actigraphy device files: each turns a file into a :class:`Recording` or raises a
ValidationError naming the file, the line or field, and what was expected."""
