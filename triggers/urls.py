from django.urls import path

from triggers import views

app_name = "triggers"

urlpatterns = [
    path("<str:token>", views.webhook, name="webhook"),
]
