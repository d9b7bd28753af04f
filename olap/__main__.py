"""`python -m olap`: the OLAP service in the foreground (as the stack runs it)."""

from olap.service import main

main()
