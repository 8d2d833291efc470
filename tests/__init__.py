"""The chatd tests (trial)."""
