"""The test suite, imported as a package (pyproject: pythonpath = ["."]), e.g. ``tests.slack.jobflow``."""
