"""One thin module per stage: parse options, call the library, do I/O. Each exposes `register(app)`.

Heavy imports (torch, transformers, comet) happen inside the command functions so `ait --help` is fast."""
