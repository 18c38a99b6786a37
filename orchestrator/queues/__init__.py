"""Job queues: the JobQueue contract (base) and its implementations."""
