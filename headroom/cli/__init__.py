"""The `headroom` command line: one file per verb group, gathered in `main`."""
