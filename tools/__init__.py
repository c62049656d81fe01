"""Local development tooling; not deployed (see .funcignore)."""
