"""Evaluation: benchmarks, and (later) FID/IS/precision-recall and the linear probe.

Every evaluator returns a plain dict of numbers.
"""
