from itkit.cli import main

main()
