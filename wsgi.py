"""The web entry point (see Procfile)."""

from bot import create_server_app

app = create_server_app()
