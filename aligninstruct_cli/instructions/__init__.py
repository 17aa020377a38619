"""Instruction records for every objective of the paper (templates, objectives, mixing)."""
