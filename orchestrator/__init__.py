"""LaxAI Train orchestrator: owns the job (spec, state machine, stores, queues, dispatch, REST API, cost)."""
