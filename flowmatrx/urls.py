from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from flowmatrx import views
from flowmatrx.api import api
from runs import events_views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("workflows/", include("workflows.urls")),
    path("runs/", include("runs.urls")),
    path("events/", events_views.event_list, name="events"),
    path("hooks/", include("triggers.urls")),
    path("api/v1/", api.urls),
]
