"""`python -m shopstream.olap`: the OLAP service in the foreground (as the stack runs it)."""

from shopstream.olap.service import main

main()
