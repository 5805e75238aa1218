"""`python -m toolchain.cli` = `deploy`."""

from toolchain.cli import main

main()
