from masksem.cli import main

main()
