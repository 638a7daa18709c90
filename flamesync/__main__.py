import sys

from .cli import main

# The guard keeps worker processes of 'flamesync batch' (started with spawn) from running the CLI
# again when multiprocessing imports the main module in them.
if __name__ == "__main__":
    sys.exit(main())
