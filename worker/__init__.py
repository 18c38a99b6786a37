"""LaxAI Train worker: runs one training job (python -m worker --task-id ID)."""
