"""Command handlers behind `bigr.cli`: file I/O and printing around library calls."""
