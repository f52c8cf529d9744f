from t360cli.cli import main

main()
