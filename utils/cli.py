"""What every script does around its main(): one-line errors and clean Ctrl-C."""
from __future__ import annotations

import os
import sys
from typing import Callable

from .errors import UserError


def run(main: Callable[[], int | None]) -> None:
    """Run a script's main; a UserError becomes `error: ...` on stderr and exit code 2.

    Set ZI2ZI_TRACEBACK=1 to see the full traceback of a UserError.
    """
    try:
        code = main()
    except UserError as err:
        if os.environ.get("ZI2ZI_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
