"""WebSocket routes of the runs app (the run stream consumers live in runs/consumers.py)."""

from django.urls import path

from runs.consumers import DashboardConsumer, RunPageConsumer, RunStreamConsumer

websocket_urlpatterns: list = [
    path("ws/runs/<uuid:run_id>", RunStreamConsumer.as_asgi()),
    path("ws/runs/<uuid:run_id>/html", RunPageConsumer.as_asgi()),
    path("ws/dashboard", DashboardConsumer.as_asgi()),
]
