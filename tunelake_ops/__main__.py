from tunelake.cli import main

main()
