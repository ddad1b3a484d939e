import io
import os
import sys

from d2sp.cli import console, main
from d2sp.training.distributed import launch_info

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
    # Done, and this rank writes no file: leave without the interpreter's teardown, in which
    # the process group's threads sometimes abort a finished process (SIGABRT, 4 of 30
    # two-process runs on the CPU: scripts/check_torchrun_exit.sh), which torchrun then
    # reports as a failed run.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
