"""`python -m harness ...` runs the same command line as the `harness` console script."""

from harness.cli.main import main

if __name__ == "__main__":
    main()
