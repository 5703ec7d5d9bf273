from chatctl.cli import main

main()
