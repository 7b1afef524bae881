"""The `tune-mnist` command (main.py): parse options, call the library, print. Rendering
for the terminal lives here and nowhere below."""
