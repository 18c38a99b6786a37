"""Job stores: the JobStore contract (base) and its implementations."""
