"""ait: the AlignInstruct toolkit (library + `ait` command line)."""

__version__ = "0.1.0"
