"""Launchers: the Launcher contract (base) and its implementations."""
