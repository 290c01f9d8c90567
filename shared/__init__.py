"""Code both the ingress and the workers use. Imports neither Flask nor Celery."""
