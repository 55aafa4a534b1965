# PYTHON_ARGCOMPLETE_OK
# No garbage collection while ctl starts: its imports make tens of thousands of objects
# and no garbage, and the collector's passes over them cost a millisecond of every call.
# ctl.main.cli turns it back on once the command line is parsed.
import gc

gc.disable()

from ctl.main import main  # noqa: E402

main()
