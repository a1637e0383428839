"""The names of the formats, in the registry's order, for code that needs only the names (the CLI's choices)
without importing every format module. :mod:`itkit.formats` checks its registry against this list."""

FORMAT_NAMES = ("alpaca", "dolly", "sharegpt", "messages", "openorca", "seed_tasks")
