# PYTHON_ARGCOMPLETE_OK
from ctl.main import main

main()
