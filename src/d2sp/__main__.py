import io
import sys

from d2sp.cli import console, main
from d2sp.distributed import launch_info

try:
    quiet = not launch_info().is_main
except ValueError:  # a broken launch environment: the trainer reports it
    quiet = False
if not quiet:
    main()
else:  # under torchrun only rank 0 prints; another rank shows its output when it fails
    console.file = captured = io.StringIO()
    try:
        main()
    except SystemExit as done:
        if done.code not in (0, None):
            sys.stderr.write(captured.getvalue())
        raise
