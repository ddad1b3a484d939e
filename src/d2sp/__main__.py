from d2sp.cli import main

main()
