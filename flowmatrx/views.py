from django.db import connection
from django.http import JsonResponse
from django.template.response import TemplateResponse

from accounts.access import public, requires
from accounts.roles import READ
from runs import dashboard as run_dashboard


@requires(READ)
def dashboard(request):
    return TemplateResponse(request, "dashboard.html", run_dashboard.context())


@public("a load balancer's liveness probe; it shows nothing private")
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})
