"""Pure domain code: JobSpec, Job, statuses, transitions, cost. Imports only the standard library and pydantic."""
