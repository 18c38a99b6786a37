"""Slack front-end tests and their helpers (``tests.slack.slack_env``, ``slack_requests``, ``jobflow``, ``backends``)."""
