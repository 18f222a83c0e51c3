from django.urls import path

from runs import views

app_name = "runs"
urlpatterns = [
    path("", views.run_list, name="list"),
    path("<uuid:run_id>/", views.run_detail, name="detail"),
    path("<uuid:run_id>/timeline", views.run_timeline, name="timeline"),
    path("<uuid:run_id>/cancel", views.cancel_run, name="cancel"),
    path("<uuid:run_id>/retry", views.retry_run, name="retry"),
    path("<uuid:run_id>/decide", views.decide, name="decide"),
    path("<uuid:run_id>/resume", views.resume_event, name="resume"),
]
