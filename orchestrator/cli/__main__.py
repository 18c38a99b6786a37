"""``python -m orchestrator.cli``: the `laxai` command."""

import sys

from orchestrator.cli.commands import main

sys.exit(main())
