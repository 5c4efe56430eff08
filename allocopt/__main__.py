from allocopt.cli import main

main()
