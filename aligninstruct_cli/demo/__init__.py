"""`ait demo`: the whole chain on toy languages, small enough for a 2-core CPU."""
