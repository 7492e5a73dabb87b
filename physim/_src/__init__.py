"""Private implementation modules; import the public names from `physim.*` instead."""
