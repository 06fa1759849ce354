"""The web entry point (see Procfile)."""

from bot import create_app

app = create_app()
