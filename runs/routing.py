"""WebSocket routes of the runs app (the run stream consumers live in runs/consumers.py)."""

websocket_urlpatterns: list = []
