"""`ait demo`: the whole chain on toy languages, small enough for a 2-core CPU."""

from pathlib import Path

# The demo declares its languages as a user would (docs/languages.md): the toy codes qaa and qab, their names,
# and the toy base model's seen list. demo.yaml names it; the toy commands load it.
LANGUAGE_FILE = Path(__file__).with_name("demo-languages.tsv")
