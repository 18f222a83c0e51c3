from django.urls import path

from workflows import views

app_name = "workflows"
urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("<uuid:workflow_id>/", views.workflow_detail, name="detail"),
]
