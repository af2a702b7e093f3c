"""`python -m langchain_devic`: the `demo` tour and the `chat` command."""

import sys

from langchain_devic._cli import main

if __name__ == "__main__":
    sys.exit(main())
