"""Command-line entry points: ``mbcas`` and its sub-commands."""
