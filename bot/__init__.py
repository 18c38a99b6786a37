"""LaxAI Train Slack front end: the Bolt app and the notifier."""
