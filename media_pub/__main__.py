"""`python -m media_pub` runs the CLI."""

from media_pub.cli import main

main()
