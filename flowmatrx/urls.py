from django.contrib import admin
from django.urls import include, path

from accounts import views as accounts_views
from flowmatrx import views
from flowmatrx.api import api
from runs import events_views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", accounts_views.login, name="login"),
    path("accounts/logout/", accounts_views.logout, name="logout"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("workflows/", include("workflows.urls")),
    path("runs/", include("runs.urls")),
    path("events/", events_views.event_list, name="events"),
    path("hooks/", include("triggers.urls")),
    path("api/v1/", api.urls),
]
