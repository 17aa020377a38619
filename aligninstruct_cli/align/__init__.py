"""Word alignment for AlignInstruct: fast_align's model in PyTorch, symmetrization, gold span pairs.

Public entry points: `pipeline.CorpusAligner` / `pipeline.align_records` (records in, aligned records
out), `persist.AlignmentModel` (saved models), `symmetrize.symmetrize`, `spans.extract_pairs`.
See docs/align.md.
"""
