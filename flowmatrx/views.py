from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.template.response import TemplateResponse

from runs import dashboard as run_dashboard


@login_required
def dashboard(request):
    return TemplateResponse(request, "dashboard.html", run_dashboard.context())


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "database": connection.vendor})
