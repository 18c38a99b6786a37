"""Helpers shared by the end-to-end test folders (running `laxai serve`, tiny jobs, waiting)."""
