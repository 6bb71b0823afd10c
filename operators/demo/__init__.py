"""The offline demo: a furnished room to capture, and quick preview renders from inside a world sphere."""
