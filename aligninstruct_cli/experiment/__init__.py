"""`ait experiment`: one config file names the corpora, objectives, systems, test sets and tables of a
study; ait turns it into a graph of ordinary `ait` stage commands (`graph.py`), runs the steps whose
outputs are missing (`run.py`, content-keyed and resumable; local or Slurm through submitit) and writes
the paper-layout tables and plots (`report.py`). `study_config.py` reads and checks the file."""
