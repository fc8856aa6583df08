from tunelake_ops.cli import main

main()
