from allocopt.launch import main

main()
