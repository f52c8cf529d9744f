"""`python -m t360cli.sandbox`: the sandbox in the foreground, without the t360 CLI."""

from t360cli.sandbox.launch import main

if __name__ == "__main__":
    main()
