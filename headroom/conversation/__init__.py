"""The conversation layer: sessions, the live zone, the frozen prefix, breakpoints, drift,
the context budget and the ledger. It sees conversations, never HTTP."""
