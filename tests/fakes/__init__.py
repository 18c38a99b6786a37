"""In-process stand-ins for services tests cannot reach (Cloud Run Jobs has no emulator, Slack)."""
