"""The help panels every command shares (light: the CLI imports it at start-up)."""

PANEL_IO = "Input and output"
PANEL_LLM = "LLM settings"
PANEL_CONTROL = "Output control"
PANEL_ORDER = (PANEL_IO, None, PANEL_LLM, PANEL_CONTROL)
"""The order of the help panels; None stands for a step's own method panel(s)."""
