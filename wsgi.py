"""WSGI entry point: ``gunicorn wsgi:app``."""
from labbook import create_app

app = create_app()
