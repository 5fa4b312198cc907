from recovery_cli.cli import main

main()
